"""Smart charging end to end: a profile's limits reach bptd and follow its schedule over
time; the composite schedule says the same; clearing the profile lifts the limit."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ocpp_rig import Station
from ocpp_steps import iso, near, remote_start, remote_stop

VERSIONS = ("1.6", "2.0.1", "2.1")


def schedule(version: str, periods: list[tuple[int, float]], unit: str = "W") -> dict[str, Any]:
    s: dict[str, Any] = {
        "charging_rate_unit": unit,
        "start_schedule": iso(),
        "charging_schedule_period": [{"start_period": t, "limit": x} for t, x in periods],
    }
    if version != "1.6":
        s["id"] = 1
    return s


def profile(
    version: str, pid: int, purpose: str, periods: list[tuple[int, float]], unit: str = "W",
    stack: int = 0, tx_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    if version == "1.6":
        p = {
            "charging_profile_id": pid, "stack_level": stack,
            "charging_profile_purpose": purpose, "charging_profile_kind": "Absolute",
            "charging_schedule": schedule(version, periods, unit),
        }  # fmt: skip
        if tx_id is not None:
            p["transaction_id"] = int(tx_id)
        return p
    if purpose == "ChargePointMaxProfile":
        purpose = "ChargingStationMaxProfile"
    p = {
        "id": pid, "stack_level": stack, "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute",
        "charging_schedule": [schedule(version, periods, unit)],
    }  # fmt: skip
    if tx_id is not None:
        p["transaction_id"] = tx_id
    return p


def set_profile(csms: Any, evse: int, p: dict[str, Any]) -> Any:
    if csms.version == "1.6":
        return csms.call("SetChargingProfile", connector_id=evse, cs_charging_profiles=p)
    return csms.call("SetChargingProfile", evse_id=evse, charging_profile=p)


def user_limit(key: str, value: float | None) -> Any:
    return lambda p: (p.get("user_limits") or {}).get(key) == value


@pytest.mark.parametrize("version", VERSIONS)
def test_a_charging_profile_drives_bptd_limits_over_time(
    version: str, station: Station, rig: Any
) -> None:
    csms, _ = rig(version)
    tx_id = remote_start(csms, station, "bpt")
    station.wait("connector.ccs", lambda p: (p["power_w"] or 0) > 9000, 30.0, "full power")
    # the station maximum in A (per phase, on the grid side), the transaction in W over time
    res = set_profile(csms, 0, profile(version, 10, "ChargePointMaxProfile", [(0, 25.0)], "A"))
    assert res.status == "Accepted"
    t0 = time.time()
    res = set_profile(
        csms, 1, profile(version, 11, "TxProfile", [(0, 8000.0), (5, 4000.0)], tx_id=tx_id)
    )
    assert res.status == "Accepted"
    msg = station.wait(
        "connector.ccs", user_limit("max_charge_power_w", 8000.0), 5.0, "the 8 kW limit"
    )
    assert msg["user_limits"]["max_ac_charge_current_a"] == 25.0
    station.wait("connector.ccs", near(8000.0), 10.0, "8 kW")
    # the composite schedule: both periods, the limits of both profiles
    if version == "1.6":
        comp = csms.call("GetCompositeSchedule", connector_id=1, duration=30)
        periods = comp.charging_schedule["charging_schedule_period"]
    else:
        comp = csms.call("GetCompositeSchedule", evse_id=1, duration=30, charging_rate_unit="W")
        periods = comp.schedule["charging_schedule_period"]
    assert comp.status == "Accepted"
    assert [p["limit"] for p in periods] == [8000.0, 4000.0], periods
    assert 0 < periods[1]["start_period"] <= 5
    # the second period comes by itself
    msg = station.wait(
        "connector.ccs", user_limit("max_charge_power_w", 4000.0), 10.0, "the 4 kW limit"
    )
    assert time.time() - t0 >= 4.0  # not before its time (the schedule starts at a whole second)
    msg = station.wait("connector.ccs", near(4000.0), 10.0, "4 kW")
    assert msg["limits"]["binding_charge"] == "user_power"
    # a higher stack level wins while it applies
    res = set_profile(
        csms, 1, profile(version, 12, "TxProfile", [(0, 2500.0)], stack=2, tx_id=tx_id)
    )
    assert res.status == "Accepted"
    station.wait("connector.ccs", near(2500.0), 10.0, "2.5 kW")
    # a TxProfile for no transaction is refused
    bad = set_profile(csms, 2, profile(version, 13, "TxProfile", [(0, 1000.0)]))
    assert bad.status == "Rejected"
    # clearing the transaction profiles leaves the station maximum
    if version == "1.6":
        res = csms.call("ClearChargingProfile", charging_profile_purpose="TxProfile")
    else:
        res = csms.call(
            "ClearChargingProfile",
            charging_profile_criteria={"charging_profile_purpose": "TxProfile"},
        )
    assert res.status == "Accepted"
    msg = station.wait(
        "connector.ccs", user_limit("max_charge_power_w", None), 5.0, "no power limit"
    )
    assert msg["user_limits"]["max_ac_charge_current_a"] == 25.0
    station.wait("connector.ccs", lambda p: (p["power_w"] or 0) > 9000, 10.0, "full power")
    remote_stop(csms, tx_id)
    station.wait_state("ccs", "finished", 20.0)
