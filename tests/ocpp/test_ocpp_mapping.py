"""bptd connector telemetry -> OCPP words (bptd.ocpp.mapping)."""

from __future__ import annotations

from typing import Any

import pytest

from bptd.ocpp.mapping import (
    charging_state,
    connector_status,
    readings,
    status16,
    stop_reason,
)


def snap(state: str, **kw: Any) -> dict[str, Any]:
    return {"state": state, "available": True, "power_w": 0.0, "current_a": 0.0,
            "control": "dynamic", "requested_current_a": 0.0, **kw}  # fmt: skip


@pytest.mark.parametrize(
    ("s", "inoperative", "v16", "v2", "cs"),
    [
        (snap("idle"), False, "Available", "Available", "Idle"),
        (snap("idle"), True, "Unavailable", "Unavailable", "EVConnected"),
        (snap("idle", available=False), False, "Unavailable", "Unavailable", "EVConnected"),
        (snap("connected"), False, "Preparing", "Occupied", "EVConnected"),
        (snap("precharge"), False, "Preparing", "Occupied", "EVConnected"),
        (snap("energy_transfer", power_w=-5000.0), False, "Charging", "Occupied", "Charging"),
        (snap("energy_transfer", control="scheduled"), False, "SuspendedEV", "Occupied",
         "SuspendedEV"),
        (snap("energy_transfer", control="scheduled", requested_current_a=50.0), False,
         "SuspendedEVSE", "Occupied", "SuspendedEVSE"),
        (snap("energy_transfer"), False, "SuspendedEVSE", "Occupied", "SuspendedEVSE"),
        (snap("welding_detection"), False, "Finishing", "Occupied", "EVConnected"),
        (snap("finished"), False, "Finishing", "Occupied", "EVConnected"),
        (snap("fault"), False, "Faulted", "Faulted", "EVConnected"),
    ],
)  # fmt: skip
def test_status_mapping(s: dict[str, Any], inoperative: bool, v16: str, v2: str, cs: str) -> None:
    assert status16(s, inoperative) == v16
    assert connector_status(v16) == v2
    if v16 != "Unavailable":
        assert charging_state(v16) == cs


def test_readings_split_directions_and_follow_the_configured_measurands() -> None:
    s = snap("energy_transfer", power_w=-5012.34, current_a=-13.456, voltage_v=372.04,
             ev={"present": True, "soc": 51.26})  # fmt: skip
    r = {x.measurand: (x.value, x.unit, x.location) for x in readings(
        s, 1234.5678, 99.0, ["Power.Active.Import", "Power.Active.Export", "Current.Export",
                             "Voltage", "SoC", "Energy.Active.Import.Register"])}  # fmt: skip
    assert r == {
        "Power.Active.Import": (0.0, "W", "Outlet"),
        "Power.Active.Export": (5012.3, "W", "Outlet"),
        "Current.Export": (13.46, "A", "Outlet"),
        "Voltage": (372.0, "V", "Outlet"),
        "SoC": (51.3, "Percent", "EV"),
        "Energy.Active.Import.Register": (1234.568, "Wh", "Outlet"),
    }
    assert [x.measurand for x in readings(snap("idle"), 0, 0, ["SoC", "Voltage"])] == ["Voltage"]


def test_stop_reasons() -> None:
    assert stop_reason("idle", "", None) == "EVDisconnected"
    assert stop_reason("fault", "", "estop") == "EmergencyStop"
    assert stop_reason("fault", "", "insulation_fault") == "GroundFault"
    assert stop_reason("fault", "", "module_lost") == "Other"
    assert stop_reason("finished", "vehicle requested stop (target_soc)", None) == "StoppedByEV"
    assert stop_reason("finished", "stop requested", None) == "Local"
    assert stop_reason("connected", "authorization cancelled", None) == "DeAuthorized"
