"""End to end: bptd-iso15118 (the iso15118 package's SECC on our EVSE controller) and the
package's own EVCC over a veth pair, with the real daemon on the virtual station.

Each session asserts what a user checks: bptd's connector went through cable check,
precharge and energy transfer and back to finished, the station's measured current had the
direction the session asked for, and the vehicle's side ended its V2G session."""

from __future__ import annotations

import time

import pytest
from ev_vehicle import TARGET_CURRENT_A
from iso_rig import Process, Rig

ENERGIZING = ["cable_check", "precharge", "energy_transfer"]
SESSION_S = 90.0  # SDP, the JVM's first EXI encodings, cable check, precharge


def _in_order(seen: list[str], wanted: list[str]) -> bool:
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)


def _charge(rig: Rig, ev: Process, sign: int) -> dict:
    """Wait for the energy transfer with the station's current in direction ``sign``."""
    return rig.watch(
        lambda m: m["state"] == "energy_transfer" and sign * m["current_a"] > 1.0,
        SESSION_S,
        f"energy transfer with current {'> +1' if sign > 0 else '< -1'} A",
    )


def _stop_and_finish(rig: Rig, ev: Process) -> None:
    """The driver ends the session; the connector and the vehicle both end it."""
    rig.station.call("sim", action="ev", connector="ccs", stop=True)
    rig.watch(lambda m: m["state"] == "finished", 30.0, "state finished")
    assert ev.proc.wait(timeout=30.0) == 0, ev.output()[-3000:]
    events = [e["ev"] for e in rig.ev_events(ev)]
    assert "session_ended" in events
    assert _in_order(rig.states, [*ENERGIZING, "stopping", "welding_detection", "finished"]), (
        rig.states
    )
    assert rig.secc.alive(), "the SECC frontend stays up for the next vehicle"


@pytest.mark.parametrize(
    ("protocol", "service", "mode"),
    [
        ("ISO_15118_20_DC", "DC", "scheduled"),
        ("ISO_15118_20_DC", "DC_BPT", "scheduled"),
        ("ISO_15118_2", "DC", "scheduled"),
        ("DIN_SPEC_70121", "DC", "scheduled"),
    ],
    ids=["iso15118_20_dc", "iso15118_20_dc_bpt_scheduled", "iso15118_2_dc", "din70121_dc"],
)
def test_dc_session_charges_through_every_phase(
    rig: Rig, protocol: str, service: str, mode: str
) -> None:
    rig.station.plug("ccs", "bpt", soc=0.5)
    ev = rig.vehicle(protocol, service, mode)
    msg = _charge(rig, ev, +1)
    assert _in_order(rig.states, ENERGIZING), rig.states
    assert msg["ev"]["bpt"] is (service == "DC_BPT")
    assert msg["control"] == "scheduled"
    # scheduled: the station follows the vehicle's target current
    rig.watch(
        lambda m: abs(m["current_a"] - TARGET_CURRENT_A) < 2.0, 30.0, "the EV's target current"
    )
    _stop_and_finish(rig, ev)


def test_dc_bpt_dynamic_discharges_at_a_setpoint_set_through_bptd(rig: Rig) -> None:
    rig.station.call("set_mode", connector="ccs", bidirectional=True)
    rig.station.plug("ccs", "bpt", soc=0.6)
    ev = rig.vehicle("ISO_15118_20_DC", "DC_BPT", "dynamic")
    rig.watch(lambda m: m["state"] == "energy_transfer", SESSION_S, "energy transfer")
    assert rig.last["control"] == "dynamic"
    assert rig.last["ev"]["bpt"] is True
    # the grid wants power back: a discharge setpoint through the API in the charge loop
    rig.station.call("setpoint", connector="ccs", power_w=-6000.0)
    _charge(rig, ev, -1)
    rig.watch(lambda m: abs(m["power_w"] + 6000.0) < 300.0, 30.0, "the -6 kW setpoint")
    soc = rig.soc()
    deadline = time.monotonic() + 30.0
    while rig.soc() >= soc:
        assert time.monotonic() < deadline, "the vehicle's SoC did not go down"
        rig.watch(lambda m: True, 5.0, "telemetry")  # the next measurement
    assert _in_order(rig.states, ENERGIZING), rig.states
    _stop_and_finish(rig, ev)


@pytest.mark.parametrize(
    "protocol", ["ISO_15118_20_DC", "ISO_15118_2"], ids=["iso15118_20", "iso15118_2"]
)
def test_a_stop_through_bptd_ends_the_vehicles_session(rig: Rig, protocol: str) -> None:
    rig.station.plug("ccs", "bpt", soc=0.5)
    ev = rig.vehicle(protocol, "DC", "scheduled")
    _charge(rig, ev, +1)
    # an operator (or OCPP's remote stop) ends the transfer: the SECC tells the vehicle
    rig.station.call("stop", connector="ccs")
    rig.watch(lambda m: m["state"] == "finished", 30.0, "state finished")
    assert ev.proc.wait(timeout=30.0) == 0, ev.output()[-3000:]
    events = rig.ev_events(ev)
    assert "stop_requested" not in [e["ev"] for e in events]  # the station stopped, not the EV
    assert {"ev": "session_ended", "successful": True}.items() <= events[-1].items()
    assert _in_order(rig.states, [*ENERGIZING, "stopping", "welding_detection", "finished"])
    vehicle = rig.station.call("sim", action="status")["connectors"]["ccs"]["vehicle"]
    assert vehicle["contactors_closed"] is False


def test_a_second_session_without_unplugging(rig: Rig) -> None:
    rig.station.plug("ccs", "bpt", soc=0.5)
    first = rig.vehicle("DIN_SPEC_70121", "DC", "scheduled")
    _charge(rig, first, +1)
    _stop_and_finish(rig, first)
    # the driver changes their mind: the vehicle starts a new V2G session, still plugged
    rig.station.call("sim", action="ev", connector="ccs", stop=False)
    rig.states.clear()
    second = rig.vehicle("ISO_15118_20_DC", "DC", "scheduled")
    _charge(rig, second, +1)
    assert _in_order(rig.states, ["authorized", *ENERGIZING]), rig.states
    _stop_and_finish(rig, second)


@pytest.mark.authorize("bptd")
def test_the_vehicle_waits_until_bptd_authorizes_the_connector(rig: Rig) -> None:
    rig.station.plug("ccs", "bpt", soc=0.5)
    ev = rig.vehicle("ISO_15118_20_DC", "DC", "scheduled")
    msg = rig.watch(
        lambda m: m["ev"]["present"] and m["ev"]["phase"] == "authorization",
        SESSION_S,
        "the vehicle asking for authorization",
    )
    assert msg["state"] == "connected"  # the frontend does not authorize by itself
    # OCPP (or an operator) authorizes: the vehicle's session continues
    rig.station.call("authorize", connector="ccs")
    _charge(rig, ev, +1)
    assert _in_order(rig.states, ["connected", "authorized", *ENERGIZING]), rig.states
    _stop_and_finish(rig, ev)


def test_insulation_fault_in_the_cable_check_ends_the_session_on_both_sides(rig: Rig) -> None:
    rig.station.plug("ccs", "bpt", soc=0.5)
    rig.station.call("sim", action="fault", kind="insulation_fault", connector="ccs")
    ev = rig.vehicle("ISO_15118_20_DC", "DC", "scheduled")
    msg = rig.watch(lambda m: m["state"] == "fault", SESSION_S, "state fault")
    assert msg["fault"] == "insulation_fault"
    assert "cable_check" in rig.states
    assert "precharge" not in rig.states
    assert ev.proc.wait(timeout=30.0) == 0, ev.output()[-3000:]
    events = [e["ev"] for e in rig.ev_events(ev)]
    assert "session_ended" in events
    assert "precharged" not in events  # the vehicle never closed its contactors
    rig.watch(lambda m: not m["ev"]["present"], 10.0, "the frontend ended the EV data")
    vehicle = rig.station.call("sim", action="status")["connectors"]["ccs"]["vehicle"]
    assert vehicle["contactors_closed"] is False
    assert vehicle["cp"] == "B"
    assert rig.secc.alive()
