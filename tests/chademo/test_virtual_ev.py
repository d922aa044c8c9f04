"""ChademoEvLogic: the virtual CHAdeMO vehicle's decisions, on scripted charger frames."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bptd.chademo import frames as fr
from bptd.chademo.frames import Received
from bptd.sim.chademo_ev import ChademoEvLogic, EvStage, EvStep, target_voltage_v
from bptd.sim.vehicle import Vehicle, vehicle_spec


class EvRig:
    def __init__(self, preset: str = "chademo_v2h", **params: Any) -> None:
        self.logic = ChademoEvLogic()
        self.vehicle = Vehicle(vehicle_spec(preset, **params))
        self.now = 50.0
        self.d1 = self.d2 = False
        self.inlet_v = 0.0
        self.charger: dict[int, dict[str, float]] = {}
        self.out: EvStep | None = None

    def offer(self, **status: float) -> None:
        """The charger's frames (0x108 / 0x109 / 0x208), fresh every step from now on."""
        self.charger.setdefault(fr.EVSE_CAPABILITY, {
            "AvailableOutputVoltage": 500, "AvailableOutputCurrent": 60,
            "ThresholdVoltage": 435, "WeldingDetectionSupport": 1,
        })  # fmt: skip
        self.charger.setdefault(fr.EVSE_STATUS, {"StatusStopControl": 1, "DischargeCompatible": 1})
        self.charger[fr.EVSE_STATUS].update(status)

    def step(self, dt: float = 0.1) -> EvStep:
        self.now += dt
        frames = {fid: Received(dict(v), self.now - 0.02) for fid, v in self.charger.items()}
        out = self.logic.step(
            self.now, self.vehicle.spec, self.vehicle.snapshot(), self.inlet_v, frames,
            self.d1, self.d2,
        )  # fmt: skip
        self.vehicle.cp = out.ev.get("cp", self.vehicle.cp)
        self.vehicle.contactors_closed = out.ev.get("contactors", self.vehicle.contactors_closed)
        self.out = out
        return out

    def sent(self, frame_id: int) -> dict[str, float]:
        assert self.out is not None
        for fid, values in self.out.frames:
            if fid == frame_id:
                decoded = fr.decode(fid, fr.encode(fid, values).data)
                assert decoded is not None
                return decoded
        raise AssertionError(f"{frame_id:#x} not sent")

    def to_closed(self) -> None:
        self.d1 = True
        self.offer()
        for _ in range(5):
            self.step()
        assert self.logic.stage is EvStage.PERMITTED
        self.d2 = True
        self.step()
        assert self.logic.stage is EvStage.CLOSED
        self.inlet_v = 380.0
        self.offer(StatusCharging=1, StatusStopControl=0)


def test_wakes_on_d1_and_sends_its_limits() -> None:
    rig = EvRig()
    out = rig.step()
    assert out.stage is EvStage.ASLEEP and not out.frames
    rig.d1 = True
    out = rig.step()
    assert out.stage is EvStage.AWAKE
    assert {fid for fid, _ in out.frames} == {0x100, 0x101, 0x102, 0x200}
    limits = rig.sent(fr.EV_CHARGE_LIMITS)
    assert limits["MaxBatteryVoltage"] == 435 and limits["MinBatteryVoltage"] == 300
    status = rig.sent(fr.EV_STATUS)
    assert status["TargetBatteryVoltage"] == 410 == target_voltage_v(rig.vehicle.spec)
    assert status["StatusChargingEnabled"] == 0 and status["StatusContactorOpen"] == 1
    assert status["StatusDischargeCompatible"] == 1 and status["ChargedRate"] == 60
    assert status["ProtocolNumber"] == 2 and status["ChargeCurrentRequest"] == 0
    assert rig.sent(fr.EV_CHARGE_TIME)["RatedBatteryCapacity"] == pytest.approx(40.0)
    assert rig.sent(fr.EV_DISCHARGE_LIMITS)["MaxDischargeCurrent"] == 0  # none before closing


def test_permission_then_contactors_on_d2_with_a_dead_inlet() -> None:
    rig = EvRig()
    rig.d1 = True
    rig.step()
    rig.offer()
    out = rig.step()
    assert out.stage is EvStage.AWAKE  # not at once: after the charger's first frames
    for _ in range(4):
        out = rig.step()
    assert out.stage is EvStage.PERMITTED and rig.vehicle.cp == "C"
    assert rig.sent(fr.EV_STATUS)["StatusChargingEnabled"] == 1
    rig.d2, rig.inlet_v = True, 300.0
    for _ in range(5):  # a live inlet: the vehicle does not close onto it
        assert rig.step().stage is EvStage.PERMITTED
    rig.inlet_v = 4.0
    out = rig.step()
    assert out.stage is EvStage.CLOSED and out.ev == {"contactors": True}
    assert rig.sent(fr.EV_STATUS)["StatusContactorOpen"] == 0


def test_request_follows_the_offer_at_20_a_per_s_and_allows_discharge() -> None:
    rig = EvRig()
    rig.to_closed()
    rig.charger[fr.EVSE_CAPABILITY]["AvailableOutputCurrent"] = 30
    requests = []
    for _ in range(25):
        rig.step()
        requests.append(rig.sent(fr.EV_STATUS)["ChargeCurrentRequest"])
    assert requests[0] <= 2 and requests[-1] == 30
    assert max(b - a for a, b in itertools.pairwise(requests)) <= 2
    allowance = rig.sent(fr.EV_DISCHARGE_LIMITS)["MaxDischargeCurrent"]
    assert allowance == 29  # min(30 A, 11 kW / 378 V), ramped, whole amperes
    rig.charger[fr.EVSE_CAPABILITY]["AvailableOutputCurrent"] = 10  # the offer falls: so does
    for _ in range(5):  # the request, no faster than 20 A/s
        rig.step()
    assert rig.sent(fr.EV_STATUS)["ChargeCurrentRequest"] == 20
    # at its minimum SoC the allowance goes (ramped) to 0
    rig.vehicle.soc = 0.2
    for _ in range(20):
        rig.step()
    assert rig.sent(fr.EV_DISCHARGE_LIMITS)["MaxDischargeCurrent"] == 0
    assert rig.logic.stage is EvStage.CLOSED


def _finish(rig: EvRig, voltages: list[float]) -> None:
    rig.offer(StatusCharging=0, StatusStopControl=1, PresentOutputCurrent=0)
    out = rig.step()
    assert out.stage is EvStage.WELDING and out.ev == {"contactors": False}
    for v in voltages:
        rig.inlet_v = v
        rig.step()


def test_stops_at_its_target_soc_then_welding_detection_met() -> None:
    rig = EvRig()
    rig.to_closed()
    for _ in range(10):
        rig.step()
    rig.vehicle.current_a = 20.0
    rig.vehicle.soc = 0.9
    out = rig.step()
    assert out.stage is EvStage.STOPPING and rig.logic.stop_reason == "target SoC"
    status = rig.sent(fr.EV_STATUS)
    assert status["StatusNormalStopRequest"] == 1 and status["ChargeCurrentRequest"] == 0
    out = rig.step()  # the charger still delivers: contactors stay closed
    assert out.stage is EvStage.STOPPING and rig.vehicle.contactors_closed
    _finish(rig, [300, 150, 60, 20, 8])
    assert rig.logic.stage is EvStage.DONE and rig.vehicle.cp == "B"
    check = rig.logic.welding_history[-1]
    assert check.met and check.below_10v_after_s == pytest.approx(0.5)
    status = rig.sent(fr.EV_STATUS)
    assert status["StatusContactorOpen"] == 1 and status["StatusChargingEnabled"] == 0
    rig.d1 = False
    out = rig.step()
    assert out.stage is EvStage.ASLEEP and not out.frames


def test_welding_detection_not_met_when_the_voltage_stays() -> None:
    rig = EvRig()
    rig.to_closed()
    rig.offer(StatusStopControl=1)  # the charger stops
    rig.step()
    assert rig.logic.stage is EvStage.STOPPING
    _finish(rig, [370.0] * 25)
    check = rig.logic.welding_history[-1]
    assert check.met is False and check.at_1s_v == 370.0
    assert rig.logic.stage is EvStage.DONE


def test_driver_stop_and_d1_loss() -> None:
    rig = EvRig()
    rig.to_closed()
    rig.vehicle.wants_stop = True
    assert rig.step().stage is EvStage.STOPPING
    assert rig.logic.stop_reason == "driver stop"
    rig.d1 = False  # the charger drops d1: the vehicle opens and sleeps
    out = rig.step()
    assert out.stage is EvStage.ASLEEP and not rig.vehicle.contactors_closed
    assert rig.vehicle.cp == "B"


@pytest.mark.parametrize(
    ("kind", "signal", "value"),
    [
        ("high_temperature", "FaultHighBatteryTemperature", 1),
        ("shift_lever", "StatusShiftNotInPark", 1),
        ("system_fault", "StatusSystemFault", 1),
        ("stop_request", "StatusNormalStopRequest", 1),
        ("permission_off", "StatusChargingEnabled", 0),
        ("target_voltage_zero", "TargetBatteryVoltage", 0),
    ],
)
def test_injected_conditions_show_in_0x102_and_stop(kind: str, signal: str, value: int) -> None:
    rig = EvRig()
    rig.to_closed()
    rig.logic.injected.add(kind)
    out = rig.step()
    assert out.stage is EvStage.STOPPING
    assert rig.sent(fr.EV_STATUS)[signal] == value


def test_silent_and_k_off() -> None:
    rig = EvRig()
    rig.to_closed()
    rig.logic.injected.add("silent")
    out = rig.step()
    assert out.stage is EvStage.CLOSED and not out.frames
    rig.logic.injected = {"k_off"}
    out = rig.step()
    assert out.ev == {"cp": "B"} and out.frames  # k off, CAN as before
    assert rig.sent(fr.EV_STATUS)["StatusChargingEnabled"] == 1


def test_refuses_a_charger_that_cannot_reach_its_target_voltage() -> None:
    rig = EvRig()
    rig.d1 = True
    rig.offer()
    rig.charger[fr.EVSE_CAPABILITY]["AvailableOutputVoltage"] = 400
    for _ in range(5):
        rig.step()
    assert rig.logic.stage is EvStage.DONE and rig.vehicle.cp == "B"
    assert rig.logic.stop_reason == "charger offers 400 V only"


def test_a_ccs_vehicle_is_left_alone() -> None:
    rig = EvRig("bpt")
    rig.d1 = True
    rig.offer()
    for _ in range(5):
        out = rig.step()
        assert out.stage is EvStage.ASLEEP and not out.frames and not out.ev
