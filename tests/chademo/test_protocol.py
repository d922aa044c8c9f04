"""ChargerProtocol: the charger side of CHAdeMO as a pure state machine, scripted."""

from __future__ import annotations

import pytest

from bptd.chademo import frames as fr
from bptd.chademo.protocol import ChademoConfig, Stage

from .rig import Rig


def test_happy_path_charge() -> None:
    rig = Rig()
    out = rig.step()  # a vehicle at the connector, not authorized: silent
    assert out.stage is Stage.IDLE and not out.d1 and not out.frames and out.hlc is None

    out = rig.step(state="authorized")  # the user authorized: d1 wakes the vehicle
    assert out.stage is Stage.WAKE and out.d1 and not out.d2 and out.hlc is None
    status = rig.frame(fr.EVSE_STATUS)
    assert status["StatusStopControl"] == 1 and status["StatusCharging"] == 0
    assert status["ProtocolNumber"] == 2 and status["DischargeCompatible"] == 1
    cap = rig.frame(fr.EVSE_CAPABILITY)
    assert cap["AvailableOutputVoltage"] == 500 and cap["AvailableOutputCurrent"] == 60
    assert cap["WeldingDetectionSupport"] == 1

    out = rig.step()  # the vehicle's first frames: parameter exchange
    assert out.stage is Stage.PARAMETERS
    hlc = rig.hlc
    assert hlc["phase"] == "parameter_discovery" and hlc["bpt"] is True
    assert hlc["max_voltage_v"] == 435 and hlc["target_voltage_v"] == 410
    assert hlc["min_voltage_v"] == 310  # the higher of 100.2-3 and the V2H 200.4-5
    assert hlc["soc"] == 60 and hlc["contactors_closed"] is False
    assert rig.frame(fr.EVSE_CAPABILITY)["ThresholdVoltage"] == 435  # min(435, 500)

    rig.ev(StatusChargingEnabled=1)  # charge permission: the EV asks for the cable check
    out = rig.step(state="allocated")
    assert out.stage is Stage.PARAMETERS and rig.hlc["phase"] == "cable_check"

    out = rig.step(state="cable_check", present_voltage_v=120.0)
    assert out.stage is Stage.INSULATION and rig.hlc["phase"] == "cable_check"
    assert rig.frame(fr.EVSE_STATUS)["StatusConnectorLocked"] == 1

    out = rig.step(present_voltage_v=435.0, cable_check_done=True, isolation="valid")
    assert out.stage is Stage.PRECHARGE
    assert rig.hlc["phase"] == "precharge" and rig.hlc["target_voltage_v"] == 0  # no target
    out = rig.step(state="precharge", present_voltage_v=300.0)
    assert out.stage is Stage.PRECHARGE and not out.d2  # the output is still live
    out = rig.step(present_voltage_v=6.0)  # below 10 V: d2
    assert out.stage is Stage.CONTACTORS and out.d2

    rig.ev(StatusContactorOpen=0, ChargeCurrentRequest=8)  # the vehicle closed its contactors
    out = rig.step(present_voltage_v=378.0)
    assert out.stage is Stage.MATCH
    hlc = rig.hlc
    assert hlc["phase"] == "precharge" and hlc["target_voltage_v"] == 378
    assert hlc["present_voltage_v"] == 378 and hlc["contactors_closed"] is True
    out = rig.step(precharge_done=True)
    assert rig.hlc["phase"] == "power_delivery_start" and rig.hlc["contactors_closed"] is True

    out = rig.step(state="energy_transfer", present_current_a=8.0)
    assert out.stage is Stage.TRANSFER
    hlc = rig.hlc
    assert hlc["phase"] == "charge_loop" and hlc["target_voltage_v"] == 410
    assert hlc["max_charge_current_a"] == 8 and hlc["target_current_a"] == 8
    status = rig.frame(fr.EVSE_STATUS)
    assert status["StatusCharging"] == 1 and status["StatusStopControl"] == 0
    assert status["PresentOutputCurrent"] == 8 and status["PresentOutputVoltage"] == 378
    # the offer stays 10 A ahead of what flows, within the station's rating
    assert rig.frame(fr.EVSE_CAPABILITY)["AvailableOutputCurrent"] == 18
    rig.ev(ChargeCurrentRequest=60)
    rig.step(present_current_a=55.0)
    assert rig.frame(fr.EVSE_CAPABILITY)["AvailableOutputCurrent"] == 60
    assert rig.hlc["max_charge_current_a"] == 60

    # the vehicle is full: normal stop request
    rig.ev(StatusNormalStopRequest=1, ChargeCurrentRequest=0)
    out = rig.step()
    assert out.stage is Stage.STOPPING and rig.p.status()["stop_reason"] == "vehicle stop request"
    assert rig.hlc["phase"] == "power_delivery_stop" and rig.hlc["max_charge_current_a"] == 0
    status = rig.frame(fr.EVSE_STATUS)
    assert status["StatusStopControl"] == 1 and status["StatusCharging"] == 1  # ramping down
    rig.step(state="stopping", present_current_a=20.0)
    assert rig.frame(fr.EVSE_STATUS)["StatusCharging"] == 1
    # the session ramped down and opened: 109.5.0 = 0, the vehicle's welding detection
    out = rig.step(state="welding_detection", present_current_a=0.0)
    assert out.stage is Stage.STOPPING and out.d2
    assert rig.frame(fr.EVSE_STATUS)["StatusCharging"] == 0
    assert rig.hlc["phase"] == "welding_detection" and rig.hlc["contactors_closed"] is True
    rig.ev(StatusContactorOpen=1, StatusChargingEnabled=0)  # welding detection finished
    out = rig.step(state="finished", present_voltage_v=150.0)
    assert out.stage is Stage.RELEASE and not out.d2 and out.d1
    assert rig.hlc["contactors_closed"] is False
    for _ in range(10):  # d1 stays until the output is dead
        out = rig.step(present_voltage_v=150.0)
        assert out.stage is Stage.RELEASE and out.d1
    out = rig.step(present_voltage_v=4.0)
    assert out.stage is Stage.ENDED and not out.d1 and not out.frames
    assert out.end and out.hlc is not None and out.hlc["phase"] == "session_stop"
    out = rig.step()
    assert out.stage is Stage.IDLE and out.hlc is None and not out.end
    assert rig.ends == 1


def test_d1_falls_at_least_half_a_second_after_d2() -> None:
    rig = Rig()
    rig.to_transfer()
    rig.ev(StatusNormalStopRequest=1)
    rig.step()
    rig.ev(StatusContactorOpen=1)
    out = rig.step(state="welding_detection", present_voltage_v=0.0)
    assert out.stage is Stage.RELEASE and not out.d2
    d2_off = rig.now
    while out.d1:
        out = rig.step()
    assert rig.now - d2_off >= 0.5


def test_v2h_discharge() -> None:
    rig = Rig()
    rig.report["evse"]["max_discharge_current_a"] = 28.0
    rig.ev(fr.EV_DISCHARGE_LIMITS, MaxDischargeCurrent=29)
    rig.to_transfer()
    out = rig.step(present_current_a=-13.4, present_voltage_v=376.0)
    assert out.stage is Stage.TRANSFER
    hlc = rig.hlc
    assert hlc["bpt"] is True and hlc["max_discharge_current_a"] == 29
    assert hlc["min_voltage_v"] == 310
    dis = rig.frame(fr.EVSE_DISCHARGE_CAPABILITY)
    assert dis["PresentDischargeCurrent"] == 13 and dis["AvailableInputCurrent"] == 28
    assert dis["AvailableInputVoltage"] == 500 and dis["LowerThresholdVoltage"] == 250
    status = rig.frame(fr.EVSE_STATUS)
    assert status["PresentOutputCurrent"] == 0 and status["StatusCharging"] == 1
    # discharging: the charging offer is the under-supply margin only
    assert rig.frame(fr.EVSE_CAPABILITY)["AvailableOutputCurrent"] == 10
    # the vehicle's allowance goes to 0 (its minimum SoC): passed on, no stop
    rig.ev(fr.EV_DISCHARGE_LIMITS, MaxDischargeCurrent=0)
    out = rig.step()
    assert out.stage is Stage.TRANSFER and rig.hlc["max_discharge_current_a"] == 0


def test_no_discharge_without_v2h_on_either_side() -> None:
    rig = Rig()
    rig.ev(StatusDischargeCompatible=0)
    rig.ev(fr.EV_DISCHARGE_LIMITS, MaxDischargeCurrent=29)
    rig.to_transfer()
    assert rig.hlc["bpt"] is False and rig.hlc["max_discharge_current_a"] == 0
    assert rig.hlc["min_voltage_v"] == 300  # 0x200 does not apply
    charge_only = Rig(ChademoConfig(v2h=False))
    charge_only.ev(fr.EV_DISCHARGE_LIMITS, MaxDischargeCurrent=29)
    charge_only.to_transfer()
    assert charge_only.hlc["bpt"] is False and charge_only.hlc["max_discharge_current_a"] == 0
    assert charge_only.frame(fr.EVSE_STATUS)["DischargeCompatible"] == 0
    assert fr.EVSE_DISCHARGE_CAPABILITY not in [f for f, _ in charge_only.out.frames]  # type: ignore[union-attr]


def test_vehicle_frames_missing_stop_and_end() -> None:
    rig = Rig()
    rig.to_transfer(current_a=20.0)
    rig.silent = True
    for _ in range(9):  # within the 1 s timeout nothing happens
        assert rig.step().stage is Stage.TRANSFER
    out = rig.step(dt=0.15)
    assert out.stage is Stage.STOPPING
    assert "missing" in rig.p.status()["stop_reason"]
    # the session is told to stop; the silent vehicle's contactors count as closed
    assert rig.hlc["phase"] == "power_delivery_stop" and rig.hlc["contactors_closed"] is True
    out = rig.step(state="stopping", present_current_a=5.0)
    assert out.stage is Stage.STOPPING and out.d2
    out = rig.step(state="welding_detection", present_current_a=0.0)
    assert out.stage is Stage.RELEASE and not out.d2  # no word from the vehicle to wait for
    out = rig.until(Stage.ENDED, present_voltage_v=0.0)
    assert out.end and not out.d1


def test_wake_timeout_ends_without_hlc() -> None:
    rig = Rig()
    rig.step(state="authorized")
    rig.silent = True
    out = rig.until(Stage.ENDED)
    assert not out.d1 and not out.end and rig.updates == []  # nothing to end at the daemon
    assert "no vehicle frames" in rig.p.status()["stop_reason"]
    assert rig.now - 1000.0 >= 5.0
    # the session stays authorized: no new wake until it moved on
    for _ in range(5):
        assert rig.step().stage is Stage.ENDED
    assert rig.step(state="connected").stage is Stage.IDLE
    rig.silent = False
    assert rig.step(state="authorized").stage is Stage.WAKE


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        ({"FaultBatteryOvervoltage": 1}, "vehicle fault: battery overvoltage"),
        ({"FaultBatteryUndervoltage": 1}, "vehicle fault: battery undervoltage"),
        ({"FaultBatteryCurrentDeviation": 1}, "vehicle fault: battery current deviation"),
        ({"FaultHighBatteryTemperature": 1}, "vehicle fault: high battery temperature"),
        ({"FaultBatteryVoltageDeviation": 1}, "vehicle fault: battery voltage deviation"),
        ({"StatusSystemFault": 1}, "vehicle charging-system fault"),
        ({"StatusShiftNotInPark": 1}, "vehicle shift lever not in park"),
        ({"StatusNormalStopRequest": 1}, "vehicle stop request"),
        ({"StatusChargingEnabled": 0}, "vehicle withdrew its charge permission"),
        ({"TargetBatteryVoltage": 0}, "vehicle target voltage 0"),
    ],
)
def test_every_vehicle_stop_trigger(signals: dict[str, float], reason: str) -> None:
    rig = Rig()
    rig.to_transfer(current_a=30.0)
    rig.ev(**signals)
    out = rig.step()
    assert out.stage is Stage.STOPPING and rig.p.status()["stop_reason"] == reason
    assert rig.hlc["phase"] == "power_delivery_stop"
    assert rig.frame(fr.EVSE_STATUS)["StatusStopControl"] == 1


def test_vehicle_stop_before_the_energy_transfer_drops_d2_at_once() -> None:
    rig = Rig()
    rig.step(state="authorized")
    rig.until(Stage.PARAMETERS, state="allocated")
    rig.ev(StatusChargingEnabled=1)
    rig.until(Stage.INSULATION, state="cable_check")
    rig.ev(StatusShiftNotInPark=1)
    out = rig.step()
    assert out.stage is Stage.STOPPING and rig.hlc["phase"] == "power_delivery_stop"
    out = rig.step(state="stopping")
    assert out.stage is Stage.RELEASE  # the vehicle's contactors never closed
    out = rig.until(Stage.ENDED, state="finished")
    assert out.end


def test_stop_from_the_station() -> None:
    rig = Rig()
    rig.to_transfer(current_a=40.0)
    out = rig.step(state="stopping", stop_requested=True)  # the stop command
    assert out.stage is Stage.STOPPING
    assert rig.p.status()["stop_reason"] == "session stopping (in the energy transfer)"
    status = rig.frame(fr.EVSE_STATUS)
    assert status["StatusStopControl"] == 1 and status["StatusCharging"] == 1
    assert status["StatusMalfunction"] == 0
    out = rig.step(state="welding_detection", present_current_a=0.0)
    assert rig.frame(fr.EVSE_STATUS)["StatusCharging"] == 0 and out.d2
    rig.ev(StatusContactorOpen=1)
    assert rig.step().stage is Stage.RELEASE


@pytest.mark.parametrize(
    ("fault", "flag"),
    [("module_lost", "StatusMalfunction"), ("insulation_fault", "StatusSystemMalfunction")],
)
def test_station_fault_flags(fault: str, flag: str) -> None:
    rig = Rig()
    rig.to_transfer(current_a=40.0)
    out = rig.step(state="fault", fault=fault)
    assert out.stage is Stage.STOPPING
    status = rig.frame(fr.EVSE_STATUS)
    assert status[flag] == 1 and status["StatusCharging"] == 0  # the fault opened at once
    other = {"StatusMalfunction", "StatusSystemMalfunction"} - {flag}
    assert status[other.pop()] == 0


def test_daemon_not_answering() -> None:
    rig = Rig()
    rig.to_transfer(current_a=40.0)
    rig.report_age_s = 2.5
    out = rig.step()
    assert out.stage is Stage.STOPPING
    assert rig.p.status()["stop_reason"].startswith("daemon not answering")
    assert rig.frame(fr.EVSE_STATUS)["StatusMalfunction"] == 1


def test_vehicle_asks_for_more_voltage_than_the_station_has() -> None:
    rig = Rig()
    rig.ev(TargetBatteryVoltage=600)
    rig.ev(fr.EV_CHARGE_LIMITS, MaxBatteryVoltage=650)
    rig.step(state="authorized")
    out = rig.step()
    assert out.stage is Stage.STOPPING
    assert rig.p.status()["stop_reason"] == (
        "battery incompatible: target voltage 600 V above the available 500 V"
    )
    assert rig.frame(fr.EVSE_STATUS)["StatusBatteryIncompatible"] == 1
    rig.ev(StatusChargingEnabled=1)  # a vehicle that gives permission anyway
    out = rig.until(Stage.ENDED, state="allocated")
    assert all(u["phase"] != "cable_check" for u in rig.updates)  # never to the cable check
    assert out.end


def test_vehicle_below_the_station_voltage_window_is_incompatible() -> None:
    rig = Rig()
    rig.ev(fr.EV_CHARGE_LIMITS, MinBatteryVoltage=100)
    rig.step(state="authorized")
    rig.step()
    assert rig.p.status()["incompatible"] is True
    assert "minimum battery voltage 100 V" in rig.p.status()["stop_reason"]


def test_vehicle_asks_for_more_current_than_the_station_offers() -> None:
    rig = Rig()
    rig.ev(ChargeCurrentRequest=200)  # more than the 60 A offered: the station clamps
    rig.step(state="authorized")
    rig.step()
    assert rig.frame(fr.EVSE_CAPABILITY)["AvailableOutputCurrent"] == 60
    out = rig.to_transfer(current_a=58.0)
    rig.ev(ChargeCurrentRequest=200)
    out = rig.step()
    assert out.stage is Stage.TRANSFER  # no stop: the daemon limits the current
    assert rig.hlc["max_charge_current_a"] == 200  # the EV's own figure, for the session
    assert rig.frame(fr.EVSE_CAPABILITY)["AvailableOutputCurrent"] == 60


def test_output_above_the_threshold_voltage_stops() -> None:
    rig = Rig()
    rig.to_transfer(current_a=20.0)
    out = rig.step(present_voltage_v=440.0)
    assert out.stage is Stage.STOPPING
    assert "above the threshold voltage 435 V" in rig.p.status()["stop_reason"]
    assert rig.frame(fr.EVSE_STATUS)["StatusSystemMalfunction"] == 1


def test_vehicle_that_never_closes_its_contactors() -> None:
    rig = Rig()
    rig.step(state="authorized")
    rig.until(Stage.PARAMETERS, state="allocated")
    rig.ev(StatusChargingEnabled=1)
    rig.until(Stage.INSULATION, state="cable_check")
    rig.until(Stage.PRECHARGE, cable_check_done=True)
    rig.until(Stage.CONTACTORS, state="precharge", present_voltage_v=0.0)
    out = rig.until(Stage.STOPPING, limit=60)
    assert "did not close its contactors within 5 s" in rig.p.status()["stop_reason"]
    assert not out.d2


def test_session_cancelled_before_the_vehicle_woke() -> None:
    rig = Rig()
    rig.step(state="authorized")
    rig.silent = True
    out = rig.step(state="connected")  # cancel
    assert out.stage is Stage.STOPPING
    out = rig.until(Stage.ENDED)
    assert not out.end
    assert rig.step().stage is Stage.IDLE
