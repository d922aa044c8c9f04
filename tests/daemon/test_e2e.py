"""The daemon end to end: driven only through its API (and the sim actions), checked the
way a user checks it: power at the setpoint in both directions, telemetry, records."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bptd.api.protocol import ApiError
from bptd.config import Config, ConnectorConfig, ContactorConfiguration
from station_rig import Station

TOLERANCE_W = 300.0  # module current accuracy (1 % of 32 A) and the ramp's last step


def near(target: float) -> Any:
    return lambda p: p["power_w"] is not None and abs(p["power_w"] - target) <= TOLERANCE_W


def sim_status(st: Station) -> dict[str, Any]:
    return st.call("sim", action="status")


def test_power_follows_the_setpoint_in_both_directions_and_the_records_match(
    station: Station,
) -> None:
    station.start_session("ccs", [1, 2])
    for target in (10000.0, -10000.0, 4000.0):
        reply = station.call("setpoint", connector="ccs", power_w=target)
        assert reply["power_w"] == target and reply["available_power_w"] == target
        msg = station.wait("connector.ccs", near(target), 10.0, f"power {target} W")
        assert msg["state"] == "energy_transfer"
        # shared equally over the two modules
        per_module = [
            station.wait(f"module.{n}", lambda p: p["power_w"] is not None)["power_w"]
            for n in (1, 2)
        ]
        assert all(abs(p - target / 2) <= TOLERANCE_W for p in per_module), per_module
    station.call("stop", connector="ccs")
    done = station.wait_state("ccs", "finished", 15.0)
    snap = sim_status(station)["connectors"]["ccs"]
    assert not snap["outputs_closed"]
    records = station.call("sessions")["sessions"]
    assert station.call("sessions", connector="ccs")["sessions"] == records
    assert station.call("sessions", connector="chademo")["sessions"] == []
    with pytest.raises(ApiError) as exc:
        station.call("sessions", connector="cs")
    assert exc.value.code == "invalid_argument"
    assert len(records) == 1
    rec = records[0]
    assert rec["reason"] == "stop requested" and rec["stopped"] is not None
    assert rec["energy_import_wh"] == pytest.approx(done["energy_import_wh"], abs=0.01)
    assert rec["energy_export_wh"] == pytest.approx(done["energy_export_wh"], abs=0.01)
    # the daemon's meter (module DC measurements) agrees with the physics
    assert rec["energy_import_wh"] == pytest.approx(snap["energy_to_vehicle_wh"], rel=0.05, abs=0.2)
    assert rec["energy_export_wh"] == pytest.approx(
        snap["energy_from_vehicle_wh"], rel=0.05, abs=0.2
    )
    assert rec["peak_charge_power_w"] >= 10000 - TOLERANCE_W
    assert rec["peak_discharge_power_w"] >= 10000 - TOLERANCE_W


def test_direction_changes_ramp_through_zero_without_opening_the_contactors(
    station: Station,
) -> None:
    station.start_session("ccs", [1, 2])
    for target in (8000.0, -8000.0, 8000.0, -3000.0):
        station.call("setpoint", connector="ccs", power_w=target)
        msg = station.wait("connector.ccs", near(target), 10.0, f"power {target} W")
        assert msg["state"] == "energy_transfer"
        assert sim_status(station)["connectors"]["ccs"]["outputs_closed"]
    events = []
    while (m := station.telemetry.recv(0)) is not None:
        if m[0] == "event":
            events.append(m[1])
    assert not [e for e in events if e["kind"] in ("state_changed", "fault")], events


def test_limits_bind_and_are_reported(station: Station) -> None:
    station.start_session("ccs", [1, 2])
    reply = station.call("setpoint", connector="ccs", power_w=50000)
    assert reply["power_w"] == 50000 and reply["available_power_w"] < 21500
    assert reply["limited_by"] == "module_soa"
    msg = station.wait("connector.ccs", lambda p: p["power_w"] > 18000, 10.0, "full power")
    assert msg["limits"]["binding_charge"] == "module_soa"
    # a user limit binds, a null clears it
    station.call("set_limits", connector="ccs", max_charge_power_w=6000)
    msg = station.wait("connector.ccs", near(6000), 10.0, "6 kW")
    assert msg["limits"]["binding_charge"] == "user_power"
    station.call("set_limits", connector="ccs", max_charge_power_w=None)
    station.wait("connector.ccs", lambda p: p["power_w"] > 18000, 10.0, "full power again")
    # no command can raise a hard limit of the config
    reply = station.call("set_limits", connector="ccs", max_charge_current_a=1000)
    assert reply["clamped"]["max_charge_current_a"]["applied"] == 200.0
    assert reply["limits"]["max_charge_current_a"] == 200.0


def test_bad_requests_are_refused_and_change_nothing(station: Station) -> None:
    before = station.call("status", connector="ccs")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("authorize", {"connector": "nope"}, "invalid_argument"),
        ("authorize", {"connector": "ccs"}, "wrong_state"),
        ("setpoint", {"connector": "ccs", "power_w": 1e9}, "out_of_range"),
        ("setpoint", {"connector": "ccs", "power_w": "10 kW"}, "invalid_argument"),
        ("setpoint", {"connector": "ccs", "power_w": -5000}, "not_allowed"),
        ("setpoint", {"connector": "ccs"}, "invalid_argument"),
        ("allocate", {"connector": "ccs", "modules": [1, 2]}, "wrong_state"),
        ("module", {"n": 9}, "invalid_argument"),
        ("module", {"n": 99}, "out_of_range"),
        ("module", {"n": 1, "power_factor": 0.1}, "out_of_range"),
        ("set_limits", {"connector": "ccs", "max_charge_power_w": -1}, "out_of_range"),
        ("set_limits", {"connector": "ccs", "bogus": 1}, "invalid_argument"),
        ("warp", {}, "unknown_command"),
    ]
    for cmd, args, code in cases:
        with pytest.raises(ApiError) as exc:
            station.call(cmd, **args)
        assert exc.value.code == code, (cmd, args, exc.value)
    after = station.call("status", connector="ccs")
    for key in ("state", "setpoint_w", "user_limits", "allocation", "bidirectional"):
        assert after[key] == before[key]


def test_a_charge_only_vehicle_is_never_discharged(station: Station) -> None:
    station.start_session("ccs", [1, 2], vehicle="charge_only")
    with pytest.raises(ApiError) as exc:
        station.call("setpoint", connector="ccs", power_w=-5000)
    assert exc.value.code == "not_allowed"
    msg = station.wait("connector.ccs", lambda p: p["ev"]["present"], 5.0)
    assert msg["limits"]["discharge_current_a"] == 0.0


def test_module_heartbeat_loss_makes_the_connector_safe(station: Station) -> None:
    station.start_session("ccs", [1, 2])
    station.call("setpoint", connector="ccs", power_w=8000)
    station.wait("connector.ccs", near(8000), 10.0)
    station.call("sim", action="fault", kind="module_heartbeat_loss", module=2)
    fault = station.wait("event", lambda e: e["kind"] == "fault", 5.0, "a fault event")
    assert fault["connector"] == "ccs" and fault["reason"] == "module_lost"
    msg = station.wait(
        "connector.ccs", lambda p: p["state"] == "fault" and abs(p["current_a"] or 0) < 1.0, 5.0
    )
    assert msg["fault"] == "module_lost"
    station.until(
        lambda: not sim_status(station)["connectors"]["ccs"]["outputs_closed"],
        5.0,
        "the output contactors open",
    )
    # once the module is back the fault can be reset
    station.call("sim", action="clear_fault", kind="module_heartbeat_loss", module=2)
    station.wait("module.2", lambda p: p["online"], 15.0, "module 2 back")
    # the output discharges below 60 V before a reset is accepted
    station.wait("connector.ccs", lambda p: p["output_voltage_v"] < 60.0, 10.0, "a dead output")
    station.call("reset", connector="ccs")
    station.wait("connector.ccs", lambda p: p["state"] in ("connected", "idle"), 5.0)
    rec = station.call("sessions")["sessions"][-1]
    assert rec["faults"] == ["module_lost"] and rec["stopped"] is not None


def test_over_temperature_derating_moves_power_to_the_cool_module(station: Station) -> None:
    station.start_session("ccs", [1, 2])
    station.call("setpoint", connector="ccs", power_w=12000)
    station.wait("connector.ccs", near(12000), 10.0)
    station.call("sim", action="fault", kind="module_overtemp", module=1, temp_c=92.0)
    hot = station.wait("module.1", lambda p: p["derating"], 5.0, "derating")
    assert hot["temperature_c"] > 75.0  # derating starts at 75 degC (module ratings)
    # module 1 keeps 15 % of its rating; module 2 takes the rest, the total holds
    station.wait(
        "module.1", lambda p: p["power_w"] is not None and p["power_w"] < 2500, 10.0, "module 1"
    )
    m2 = station.wait(
        "module.2", lambda p: p["power_w"] is not None and p["power_w"] > 9000, 10.0, "module 2"
    )
    assert m2["power_w"] <= 10500 + TOLERANCE_W
    msg = station.wait("connector.ccs", near(12000), 10.0, "12 kW held")
    assert msg["state"] == "energy_transfer"


def test_telemetry_messages_carry_time_and_units(station: Station) -> None:
    msg = station.wait("station", lambda p: True, 5.0)
    assert msg["t"].endswith("Z") and isinstance(msg["mono"], float)
    assert msg["nodes_operational"] == msg["nodes_total"] == 6
    status = station.call("status")
    assert set(status["connectors"]) == {"ccs", "chademo"}
    assert set(status["modules"]) == {"1", "2"}
    lim = status["connectors"]["ccs"]["limits"]
    assert {"charge_current_a", "discharge_current_a", "binding_charge"} <= set(lim)


def two_ccs(config: Config) -> Config:
    """Two CCS connectors and the split configuration that gives each one module."""
    connectors = (
        dataclasses.replace(config.connectors[0], name="left"),
        ConnectorConfig(name="right", chipset_node_id=0x20, kind="ccs"),
    )
    confs = (
        ContactorConfiguration(1, "LEFT_1_RIGHT_2", {"left": (1,), "right": (2,)}),
        ContactorConfiguration(2, "PARALLEL_LEFT", {"left": (1, 2)}),
    )
    return config.replace(connectors=connectors, contactor_configurations=confs)


def test_v2v_one_vehicle_charges_another_through_the_ac_bus(
    station_config: Config, make_station: Any
) -> None:
    st: Station = make_station(two_ccs(station_config))
    st.start_session("left", [1])
    st.start_session("right", [2])
    st.call("setpoint", connector="left", power_w=5000)
    st.call("setpoint", connector="right", power_w=-5000)
    left = st.wait("connector.left", near(5000), 10.0, "left charging")
    right = st.wait("connector.right", near(-5000), 10.0, "right discharging")
    assert left["modules"] == [1] and right["modules"] == [2]
    # the charging module draws more from the AC bus than it delivers (its losses), the
    # discharging one feeds back less than it takes from its vehicle
    st.wait("module.1", lambda p: (p["ac_power_w"] or 0.0) > 5000.0, 10.0, "AC in > DC out")
    st.wait("module.2", lambda p: -5000.0 < (p["ac_power_w"] or 0.0) < -4000.0, 10.0, "AC out")
    with pytest.raises(ApiError) as exc:
        st.call("setpoint", connector="left", power_w=1e9)
    assert exc.value.code == "out_of_range"


def test_every_command_is_documented(station: Station) -> None:
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parents[2] / "docs" / "api.md").read_text()
    headings = " ".join(re.findall(r"^### (.+)$", doc, flags=re.M))
    commands = station.call("commands")
    spec = set(
        [
            "ping",
            "status",
            "config",
            "authorize",
            "allocate",
            "set_limits",
            "set_mode",
            "setpoint",
            "start",
            "stop",
            "reset",
            "supervisor_request",
            "module",
            "sim",
        ]
    )
    assert spec <= set(commands)
    missing = [name for name in commands if f"`{name}`" not in headings]
    assert not missing, f"commands without a section in docs/api.md: {missing}"


def test_losing_a_module_stops_only_its_connector(
    station_config: Config, make_station: Any
) -> None:
    st: Station = make_station(two_ccs(station_config))
    st.start_session("left", [1])
    st.start_session("right", [2])
    st.call("setpoint", connector="left", power_w=4000)
    st.call("setpoint", connector="right", power_w=-4000)
    st.wait("connector.left", near(4000), 10.0)
    st.wait("connector.right", near(-4000), 10.0)
    st.call("sim", action="fault", kind="module_heartbeat_loss", module=2)
    fault = st.wait("event", lambda e: e["kind"] == "fault", 5.0, "a fault")
    assert fault["connector"] == "right" and fault["reason"] == "module_lost"
    st.wait("connector.right", lambda p: abs(p["current_a"] or 0.0) < 1.0, 5.0, "right at 0 A")
    for _ in range(5):  # the other connector keeps running, message after message
        left = st.wait("connector.left", lambda p: True, 5.0)
        assert left["state"] == "energy_transfer" and abs(left["power_w"] - 4000) <= TOLERANCE_W


def test_vendor_request_codes_run_a_session(station: Station) -> None:
    station.call("sim", action="plug", connector="ccs", vehicle="bpt")
    station.wait_state("ccs", "connected")
    assert station.call("supervisor_request", connector="ccs", code=1)["state"] == "authorized"
    r = station.call(
        "supervisor_request", connector="ccs", code=3, bidirectional=True, configuration=1
    )
    assert r["modules"] == [1, 2]
    station.wait_state("ccs", "energy_transfer", 30.0)
    station.call("setpoint", connector="ccs", power_w=-6000)
    station.wait("connector.ccs", near(-6000), 10.0)
    station.call("supervisor_request", connector="ccs", code=4)
    station.wait_state("ccs", "finished", 15.0)
    assert station.call("supervisor_request", connector="ccs", code=7)["state"] == "authorized"


def test_a_silent_hlc_frontend_ends_the_transfer(station: Station) -> None:
    station.start_session("ccs", [1, 2])
    station.call("setpoint", connector="ccs", power_w=5000)
    station.wait("connector.ccs", near(5000), 10.0)
    station.daemon.evcc.close()  # the frontend stops talking; the vehicle stays as it was
    stop = station.wait(
        "event", lambda e: e["kind"] == "state_changed" and e["to"] == "stopping", 10.0
    )
    assert "contactors open" in stop["text"]
    msg = station.wait("connector.ccs", lambda p: p["state"] == "finished", 15.0)
    assert abs(msg["current_a"]) < 1.0 and msg["ev"]["present"] is False


def test_an_ev_limit_of_zero_amperes_is_a_limit_not_none(station: Station) -> None:
    """A vehicle that announces 0 A of charge current gets 0 A: the station's limits say
    so and name the vehicle as the binding constraint (its discharge limit still holds)."""
    station.start_session("ccs", [1, 2], max_charge_current_a=0.0, max_discharge_current_a=40.0)
    msg = station.wait("connector.ccs", lambda p: p["ev"]["present"], 5.0, "the vehicle's data")
    lim = msg["limits"]
    assert lim["charge_current_a"] == 0.0 and lim["binding_charge"].startswith("ev")
    assert 0.0 < abs(lim["discharge_current_a"]) <= 40.0
    station.call("setpoint", connector="ccs", power_w=5000)
    reply = station.call("status", connector="ccs")
    assert reply["limits"]["charge_power_w"] == 0.0
