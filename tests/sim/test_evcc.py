"""The virtual EVCC: its decision logic on scripted reports, the ``ev`` action's ``stop``,
and a VirtualEvcc that keeps going when nobody (or a refusing socket) answers."""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bptd.config import Config
from bptd.session.states import EvPhase, State
from bptd.sim.evcc import EvccLogic, EvccStep, VirtualEvcc
from bptd.sim.server import serve
from bptd.sim.station import SimActionError, VirtualStation
from bptd.sim.vehicle import Vehicle, vehicle_spec


def vehicle(preset: str = "bpt", **spec: Any) -> dict[str, Any]:
    """A vehicle entry of the station snapshot."""
    return dict(Vehicle(vehicle_spec(preset, **spec)).snapshot())


def report(state: State, **fields: Any) -> dict[str, Any]:
    """An hlc report (the ``result`` of hlc_status / hlc_update)."""
    base: dict[str, Any] = {
        "connector": "ccs",
        "state": state.value,
        "cable_check_done": False,
        "isolation": "invalid",
        "precharge_done": False,
        "present_voltage_v": 0.0,
        "present_current_a": 0.0,
        "stop_requested": False,
        "power_limit_reached": False,
        "bidirectional": True,
        "control": "dynamic",
        "evse": {},
    }
    base.update(fields)
    return base


def apply(v: dict[str, Any], step: EvccStep) -> None:
    """What station.ev does to the vehicle."""
    if "cp" in step.ev:
        v["cp"] = step.ev["cp"]
    if "contactors" in step.ev:
        v["contactors_closed"] = step.ev["contactors"]


def charging(ev: EvccLogic, v: dict[str, Any]) -> None:
    """Walk ``ev`` into the charge loop."""
    for r in (
        report(State.ALLOCATED),
        report(State.CABLE_CHECK, cable_check_done=True),
        report(State.PRECHARGE, precharge_done=True),
        report(State.ENERGY_TRANSFER),
    ):
        apply(v, ev.step(r, v))
    assert ev.phase is EvPhase.CHARGE_LOOP


# --------------------------------------------------------------------------- logic
def test_happy_path_walks_every_phase_with_its_physical_actions() -> None:
    ev, v = EvccLogic(), vehicle(soc=0.5)
    script: list[tuple[dict[str, Any], EvPhase, dict[str, Any], bool]] = [
        (report(State.CONNECTED), EvPhase.AUTHORIZATION, {}, False),
        (report(State.AUTHORIZED), EvPhase.PARAMETER_DISCOVERY, {}, False),
        (report(State.ALLOCATED), EvPhase.CABLE_CHECK, {"cp": "C"}, False),
        (report(State.CABLE_CHECK), EvPhase.CABLE_CHECK, {}, False),
        (report(State.CABLE_CHECK, cable_check_done=True), EvPhase.PRECHARGE, {}, False),
        (report(State.PRECHARGE), EvPhase.PRECHARGE, {}, False),
        (
            report(State.PRECHARGE, precharge_done=True),
            EvPhase.POWER_DELIVERY_START,
            {"contactors": True},
            False,
        ),
        (report(State.PRECHARGE, precharge_done=True), EvPhase.POWER_DELIVERY_START, {}, False),
        (report(State.ENERGY_TRANSFER), EvPhase.CHARGE_LOOP, {}, False),
        (report(State.ENERGY_TRANSFER), EvPhase.CHARGE_LOOP, {}, False),
    ]
    sent: list[dict[str, Any]] = []
    for r, phase, actions, end in script:
        step = ev.step(r, v)
        assert (step.phase, dict(step.ev), step.end) == (phase, actions, end), r["state"]
        assert step.update is not None and step.update["phase"] == phase.value
        apply(v, step)
        sent.append(dict(step.update))
    assert v["cp"] == "C" and v["contactors_closed"] is True
    precharge = next(u for u in sent if u["phase"] == "precharge")
    assert precharge["target_voltage_v"] == pytest.approx(v["terminal_voltage_v"])
    assert precharge["contactors_closed"] is False
    assert sent[-1]["contactors_closed"] is True
    assert sent[-1]["target_current_a"] == v["limits"]["max_charge_current_a"]
    assert sent[-1]["bpt"] is True and sent[-1]["max_discharge_current_a"] == 100.0

    # the EV stops (driver), the session ramps down, welding detection, finished
    v["wants_stop"] = True
    step = ev.step(report(State.ENERGY_TRANSFER, present_current_a=40.0), v)
    assert step.phase is EvPhase.POWER_DELIVERY_STOP and ev.stop_reason == "requested"
    step = ev.step(report(State.STOPPING, present_current_a=20.0), v)
    assert (step.phase, dict(step.ev)) == (EvPhase.POWER_DELIVERY_STOP, {})
    step = ev.step(report(State.STOPPING, present_current_a=0.4), v)
    assert (step.phase, dict(step.ev)) == (EvPhase.WELDING_DETECTION, {"contactors": False})
    assert step.update is not None and step.update["contactors_closed"] is False
    apply(v, step)
    step = ev.step(report(State.WELDING_DETECTION), v)
    assert (step.phase, dict(step.ev), step.end) == (EvPhase.WELDING_DETECTION, {}, False)
    step = ev.step(report(State.FINISHED), v)
    assert (step.phase, dict(step.ev), step.end) == (EvPhase.SESSION_STOP, {"cp": "B"}, False)
    assert step.update is not None and step.update["phase"] == "session_stop"
    apply(v, step)
    step = ev.step(report(State.FINISHED), v)
    assert step.end and step.update is None and not step.ev
    # ended: nothing more until the daemon re-arms
    step = ev.step(report(State.FINISHED), v)
    assert not step.end and step.update is None and not step.ev
    step = ev.step(report(State.AUTHORIZED), v)
    assert step.phase is EvPhase.PARAMETER_DISCOVERY and step.update is not None


def test_every_phase_change_is_flagged_once() -> None:
    ev, v = EvccLogic(), vehicle()
    first = ev.step(None, v)
    assert first.changed and first.phase is EvPhase.SESSION_SETUP
    assert ev.step(report(State.CONNECTED), v).changed
    assert not ev.step(report(State.CONNECTED), v).changed


def test_without_a_report_the_ev_keeps_its_phase_and_vehicle() -> None:
    ev, v = EvccLogic(), vehicle()
    charging(ev, v)
    step = ev.step(None, v)
    assert (step.phase, dict(step.ev), step.end) == (EvPhase.CHARGE_LOOP, {}, False)
    assert step.update is not None and step.update["contactors_closed"] is True


def test_a_lagging_report_never_sends_the_ev_back() -> None:
    ev, v = EvccLogic(), vehicle()
    ev.step(report(State.ALLOCATED), v)
    ev.step(report(State.CABLE_CHECK, cable_check_done=True), v)
    assert ev.phase is EvPhase.PRECHARGE
    assert ev.step(report(State.CABLE_CHECK), v).phase is EvPhase.PRECHARGE


@pytest.mark.parametrize(
    ("soc", "current_a", "stops", "reason"),
    [
        (0.9, 50.0, True, "target_soc"),
        (0.95, 50.0, True, "target_soc"),
        (0.89, 50.0, False, ""),
        (0.9, 0.0, False, ""),  # at target but idle: nothing to stop
        (0.2, -30.0, True, "min_soc"),
        (0.21, -30.0, False, ""),
        (0.9, -30.0, False, ""),  # full, discharging: fine
    ],
)
def test_stop_on_soc_limits(soc: float, current_a: float, stops: bool, reason: str) -> None:
    ev, v = EvccLogic(), vehicle(target_soc=0.9, min_soc=0.2)
    charging(ev, v)
    v.update(soc=soc, current_a=current_a)
    step = ev.step(report(State.ENERGY_TRANSFER, present_current_a=current_a), v)
    want = EvPhase.POWER_DELIVERY_STOP if stops else EvPhase.CHARGE_LOOP
    assert step.phase is want
    assert ev.stop_reason == reason
    assert step.update is not None and step.update["phase"] == want.value
    assert not step.ev  # contactors stay closed until the current is down


def test_stop_via_wants_stop_and_on_the_evse_request() -> None:
    ev, v = EvccLogic(), vehicle()
    charging(ev, v)
    v["wants_stop"] = True
    assert ev.step(report(State.ENERGY_TRANSFER), v).phase is EvPhase.POWER_DELIVERY_STOP
    # the stop sticks while the report still says energy transfer
    v["wants_stop"] = False
    assert ev.step(report(State.ENERGY_TRANSFER), v).phase is EvPhase.POWER_DELIVERY_STOP

    ev, v = EvccLogic(), vehicle()
    charging(ev, v)
    step = ev.step(report(State.ENERGY_TRANSFER, stop_requested=True), v)
    assert step.phase is EvPhase.POWER_DELIVERY_STOP and ev.stop_reason == "evse_stop"


def test_a_stop_by_the_station_goes_through_welding_detection() -> None:
    ev, v = EvccLogic(), vehicle()
    charging(ev, v)
    assert ev.step(report(State.STOPPING, present_current_a=-35.0), v).phase is (
        EvPhase.POWER_DELIVERY_STOP
    )
    step = ev.step(report(State.STOPPING, present_current_a=-0.5), v)
    assert (step.phase, dict(step.ev)) == (EvPhase.WELDING_DETECTION, {"contactors": False})


def test_fault_opens_the_contactors_and_goes_back_to_cp_b() -> None:
    ev, v = EvccLogic(), vehicle()
    charging(ev, v)
    step = ev.step(report(State.FAULT, present_current_a=30.0), v)
    assert dict(step.ev) == {"cp": "B", "contactors": False}
    assert step.update is not None and step.update["contactors_closed"] is False
    assert not step.end
    apply(v, step)
    assert not ev.step(report(State.FAULT), v).ev  # said once
    # reset: a new session from authorization
    step = ev.step(report(State.CONNECTED), v)
    assert step.phase is EvPhase.AUTHORIZATION and not step.ev


def test_unplug_ends_the_session_once() -> None:
    ev, v = EvccLogic(), vehicle()
    charging(ev, v)
    step = ev.step(None, None)
    assert step.end and step.changed and step.phase is EvPhase.NONE
    assert step.update is None and not step.ev
    assert not ev.step(None, None).end
    # a session already ended (finished) is not ended twice
    ev, v = EvccLogic(), vehicle()
    ev.step(report(State.FINISHED), v)
    assert ev.step(report(State.FINISHED), v).end
    assert not ev.step(None, None).end


def test_a_new_vehicle_starts_from_its_own_state() -> None:
    ev, v = EvccLogic(), vehicle()
    charging(ev, v)
    ev.step(None, None)
    fresh = vehicle()
    step = ev.step(report(State.CONNECTED), fresh)
    assert step.phase is EvPhase.AUTHORIZATION and not step.ev


def test_chademo_vehicles_are_left_alone() -> None:
    ev = EvccLogic()
    step = ev.step(report(State.CONNECTED), vehicle("chademo_v2h"))
    assert step == EvccStep(EvPhase.NONE)


def test_a_vehicle_without_bpt_announces_no_discharge() -> None:
    ev, v = EvccLogic(), vehicle("charge_only", max_discharge_current_a=50.0)
    step = ev.step(report(State.CONNECTED), v)
    u = step.update
    assert u is not None
    assert u["bpt"] is False
    assert u["max_discharge_current_a"] == 0.0 and u["max_discharge_power_w"] == 0.0
    assert u["max_charge_current_a"] == 125.0 and u["max_voltage_v"] == 450.0
    assert u["soc"] == pytest.approx(v["soc"] * 100.0)
    assert u["present_voltage_v"] == v["terminal_voltage_v"]


def test_a_failed_vehicle_action_is_repeated() -> None:
    ev, v = EvccLogic(), vehicle()
    assert dict(ev.step(report(State.ALLOCATED), v).ev) == {"cp": "C"}
    ev.invalidate()
    assert dict(ev.step(report(State.ALLOCATED), v).ev) == {"cp": "C", "contactors": False}


# --------------------------------------------------------------------------- station.ev(stop)
@pytest.fixture
def station(reference_config: Config, channel: str) -> Iterator[VirtualStation]:
    with VirtualStation(reference_config, f"virtual:{channel}") as st:
        yield st


def test_ev_stop_sets_wants_stop_until_replugged(station: VirtualStation) -> None:
    station.plug("ccs", "bpt")
    assert station.snapshot()["connectors"]["ccs"]["vehicle"]["wants_stop"] is False
    out = station.ev("ccs", stop=True)
    assert out["vehicle"]["wants_stop"] is True
    assert station.action("ev", connector="ccs", stop=False)["vehicle"]["wants_stop"] is False
    station.ev("ccs", stop=True, cp="C")
    with pytest.raises(SimActionError) as err:
        station.ev("ccs", stop="yes")  # type: ignore[arg-type]
    assert err.value.code == "invalid_argument"
    station.unplug("ccs")
    out = station.plug("ccs", "bpt")
    assert out["vehicle"]["wants_stop"] is False and out["vehicle"]["cp"] == "B"


# --------------------------------------------------------------------------- VirtualEvcc
def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    tick = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        tick.wait(0.01)
    raise AssertionError("condition not met in time")


def test_evcc_survives_a_daemon_that_does_not_answer(
    station: VirtualStation, tmp_path: pathlib.Path
) -> None:
    station.plug("ccs", "bpt")
    evcc = VirtualEvcc(station, f"ipc://{tmp_path}/nobody.sock", period_s=0.02, timeout_s=0.02)
    with evcc:
        wait_for(lambda: evcc.cycles >= 3)
        assert evcc._thread is not None and evcc._thread.is_alive()
        station.unplug("ccs")
        wait_for(lambda: "ccs" not in evcc.evs)
    assert evcc._thread is not None and not evcc._thread.is_alive()
    assert evcc.client._sock is None  # closed
    vehicle_left = station.snapshot()["connectors"]["ccs"]["vehicle"]
    assert vehicle_left is None


def test_evcc_keeps_going_when_its_requests_are_refused(
    station: VirtualStation, tmp_path: pathlib.Path
) -> None:
    # the sim socket refuses hlc_* (unknown_command), like a daemon refusing them
    endpoint = f"ipc://{tmp_path}/sim.sock"
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(station, endpoint, stop), daemon=True)
    server.start()
    station.plug("ccs", "bpt")
    station.plug("chademo", "chademo_v2h")
    try:
        with VirtualEvcc(station, endpoint, period_s=0.02, timeout_s=2.0) as evcc:
            wait_for(lambda: evcc.cycles >= 5)
            assert evcc.phase("ccs") is EvPhase.SESSION_SETUP  # no report: it waits
            assert evcc.phase("chademo") is EvPhase.NONE
            assert "chademo" not in evcc.evs
            v = station.snapshot()["connectors"]["ccs"]["vehicle"]
            assert (v["cp"], v["contactors_closed"]) == ("B", False)
    finally:
        stop.set()
        server.join(5)


def test_evcc_rejects_a_period_that_lets_hlc_data_go_stale() -> None:
    with pytest.raises(ValueError):
        VirtualEvcc(None, "ipc:///nonexistent/x.sock", period_s=0.5)  # type: ignore[arg-type]
