"""OCPP 2.1 V2X end to end: setpoint, dischargeLimit (enforced by bptd), operation modes,
Dynamic profiles with UpdateDynamicSchedule, NotifyEVChargingNeeds."""

from __future__ import annotations

from typing import Any

from ocpp_rig import Station
from ocpp_steps import iso, near, remote_start, remote_stop, sampled


def v2x_profile(
    pid: int, stack: int, period: dict[str, Any], kind: str = "Absolute",
    tx_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    p: dict[str, Any] = {
        "id": pid,
        "stack_level": stack,
        "charging_profile_purpose": "TxProfile",
        "charging_profile_kind": kind,
        "charging_schedule": [
            {
                "id": pid,
                "charging_rate_unit": "W",
                "start_schedule": iso(),
                "charging_schedule_period": [{"start_period": 0, **period}],
            }
        ],
    }
    if tx_id is not None:
        p["transaction_id"] = tx_id
    return p


def user_limit(key: str, value: float | None) -> Any:
    return lambda p: (p.get("user_limits") or {}).get(key) == value


def test_setpoint_discharge_limit_and_operation_modes(station: Station, rig: Any) -> None:
    csms, _ = rig("2.1")
    # the remote start brings its TxProfile: discharge 5 kW (central setpoint)
    start_profile = v2x_profile(
        1, 0, {"operation_mode": "CentralSetpoint", "setpoint": -5000.0, "limit": 11000.0}
    )
    tx_id = remote_start(csms, station, "bpt", profile=start_profile)
    needs = csms.wait("NotifyEVChargingNeeds")
    cn = needs.payload["chargingNeeds"]
    assert cn["requestedEnergyTransfer"] == "DC_BPT" and cn["controlMode"] == "DynamicControl"
    assert cn["v2xChargingParameters"]["maxDischargeCurrent"] > 0
    station.wait("connector.ccs", near(-5000.0), 30.0, "-5 kW")
    meter = csms.wait(
        "TransactionEvent",
        lambda p: (
            p["triggerReason"] == "MeterValuePeriodic"
            and abs((sampled(p, "Power.Active.Export") or 0) - 5000.0) <= 300.0
        ),
    )
    assert sampled(meter.payload, "Power.Active.Import") == 0.0
    assert sampled(meter.payload, "Current.Export") > 0
    csms.wait(
        "TransactionEvent",
        lambda p: (
            p["triggerReason"] == "OperationModeChanged"
            and p["transactionInfo"]["operationMode"] == "CentralSetpoint"
        ),
    )
    # dischargeLimit caps a larger discharge setpoint: bptd enforces it
    res = csms.call(
        "SetChargingProfile",
        evse_id=1,
        charging_profile=v2x_profile(
            2, 1,
            {"operation_mode": "CentralSetpoint", "setpoint": -9000.0, "discharge_limit": -3000.0},
            tx_id=tx_id,
        ),
    )  # fmt: skip
    assert res.status == "Accepted"
    msg = station.wait("connector.ccs", near(-3000.0), 10.0, "-3 kW (the discharge limit)")
    assert msg["user_limits"]["max_discharge_power_w"] == 3000.0
    assert msg["setpoint_w"] == -9000.0 and msg["limits"]["binding_discharge"] == "user_power"
    # the composite schedule carries the V2X values
    comp = csms.call("GetCompositeSchedule", evse_id=1, duration=60, charging_rate_unit="W")
    first = comp.schedule["charging_schedule_period"][0]
    assert first["setpoint"] == -9000.0 and first["discharge_limit"] == -3000.0
    assert first["operation_mode"] == "CentralSetpoint"
    # a Dynamic profile, then UpdateDynamicSchedule moves its setpoint and limit
    res = csms.call(
        "SetChargingProfile",
        evse_id=1,
        charging_profile=v2x_profile(
            3, 2, {"operation_mode": "CentralSetpoint", "setpoint": -4000.0}, "Dynamic", tx_id
        ),
    )
    assert res.status == "Accepted"
    msg = station.wait("connector.ccs", near(-4000.0), 10.0, "-4 kW")
    assert msg["user_limits"]["max_discharge_power_w"] is None
    res = csms.call(
        "UpdateDynamicSchedule",
        charging_profile_id=3,
        schedule_update={"setpoint": 6000.0, "limit": 2000.0},
    )
    assert res.status == "Accepted"
    station.wait("connector.ccs", near(2000.0), 10.0, "+2 kW (setpoint 6 kW, limit 2 kW)")
    bad = csms.call(
        "UpdateDynamicSchedule", charging_profile_id=1, schedule_update={"setpoint": 1.0}
    )
    assert bad.status == "Rejected"  # profile 1 is not Dynamic
    # operation modes bptd does not implement are refused with a reason
    res = csms.call(
        "SetChargingProfile",
        evse_id=1,
        charging_profile=v2x_profile(4, 3, {"operation_mode": "LocalFrequency"}, tx_id=tx_id),
    )
    assert res.status == "Rejected" and res.status_info["reason_code"] == "UnsupportedParam"
    # ExternalSetpoint: another client of bptd (a lab script, an EMS) sets the power
    res = csms.call(
        "SetChargingProfile",
        evse_id=1,
        charging_profile=v2x_profile(
            5, 4, {"operation_mode": "ExternalSetpoint", "discharge_limit": -6000.0}, tx_id=tx_id
        ),
    )
    assert res.status == "Accepted"
    station.wait("connector.ccs", user_limit("max_discharge_power_w", 6000.0), 5.0)
    station.call("setpoint", connector="ccs", power_w=-7000.0)
    station.wait("connector.ccs", near(-6000.0), 10.0, "-6 kW (external -7 kW, limit 6 kW)")
    # Idle: nothing flows, the EVSE suspends
    res = csms.call(
        "SetChargingProfile",
        evse_id=1,
        charging_profile=v2x_profile(6, 5, {"operation_mode": "Idle"}, tx_id=tx_id),
    )
    assert res.status == "Accepted"
    station.wait("connector.ccs", near(0.0, 100.0), 10.0, "0 kW")
    csms.wait(
        "TransactionEvent",
        lambda p: p["transactionInfo"].get("chargingState") == "SuspendedEVSE",
    )
    remote_stop(csms, tx_id)
    end = csms.wait("TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert end.payload["transactionInfo"]["stoppedReason"] == "Remote"
    record = station.call("sessions")["sessions"][-1]
    export = record["energy_export_wh"]
    assert export > 1.0
    # the registers moved by what bptd measured, in both directions
    started = csms.wait("TransactionEvent", lambda p: p["eventType"] == "Started")
    delta = sampled(end.payload, "Energy.Active.Export.Register") - sampled(
        started.payload, "Energy.Active.Export.Register"
    )
    assert abs(delta - export) <= 0.05, (delta, export)
    assert all(m.valid for m in csms.messages)
