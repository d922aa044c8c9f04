"""A scripted vehicle and a scripted daemon report around one ChargerProtocol (no I/O)."""

from __future__ import annotations

from typing import Any

from bptd.chademo import frames as fr
from bptd.chademo.frames import Received
from bptd.chademo.protocol import ChademoConfig, ChargerProtocol, Output, Stage

EVSE = {
    "max_voltage_v": 500.0,
    "min_voltage_v": 150.0,
    "max_charge_current_a": 60.0,
    "max_discharge_current_a": 0.0,
    "max_charge_power_w": 21000.0,
    "max_discharge_power_w": 0.0,
}

#: a LEAF-like V2H vehicle (the chademo_v2h preset)
VEHICLE: dict[int, dict[str, float]] = {
    fr.EV_CHARGE_LIMITS: {
        "MinChargeCurrent": 0,
        "MinBatteryVoltage": 300,
        "MaxBatteryVoltage": 435,
        "ChargedRateConstant": 100,
    },
    fr.EV_CHARGE_TIME: {
        "MaxChargeTime10s": 2550,
        "MaxChargeTime1min": 5400,
        "EstChargeTime1min": 1800,
        "RatedBatteryCapacity": 40.0,
    },
    fr.EV_STATUS: {
        "ProtocolNumber": 2,
        "TargetBatteryVoltage": 410,
        "ChargeCurrentRequest": 0,
        "StatusChargingEnabled": 0,
        "StatusContactorOpen": 1,
        "StatusDischargeCompatible": 1,
        "ChargedRate": 60,
    },
    fr.EV_DISCHARGE_LIMITS: {
        "MaxDischargeCurrent": 0,
        "MinDischargeVoltage": 310,
        "MinBatteryDischargeLevel": 20,
        "MaxRemainingCapacityForCharging": 90,
    },
}


class Rig:
    """``step(**report)`` advances 100 ms: the vehicle's frames arrive fresh (unless
    ``silent``), the report gets the given changes, the protocol steps."""

    def __init__(self, config: ChademoConfig | None = None) -> None:
        self.p = ChargerProtocol(config)
        self.now = 1000.0
        self.vehicle = {fid: dict(sig) for fid, sig in VEHICLE.items()}
        self.awake = False  # the vehicle sends once d1 is up
        self.silent = False
        self.frames: dict[int, Received] = {}
        self.report: dict[str, Any] = {
            "connector": "chademo",
            "state": "connected",
            "cable_check_done": False,
            "isolation": "invalid",
            "precharge_done": False,
            "present_voltage_v": 0.0,
            "present_current_a": 0.0,
            "stop_requested": False,
            "fault": None,
            "evse": dict(EVSE),
        }
        self.report_age_s = 0.05
        self.out: Output | None = None
        self.updates: list[dict[str, Any]] = []
        self.ends = 0

    def ev(self, frame_id: int = fr.EV_STATUS, **signals: float) -> None:
        self.vehicle[frame_id].update(signals)

    def step(self, dt: float = 0.1, **report: Any) -> Output:
        self.now += dt
        self.report.update(report)
        if self.awake and not self.silent:
            for fid, sig in self.vehicle.items():
                self.frames[fid] = Received(dict(sig), self.now - 0.01)
        out = self.p.step(self.now, self.frames, self.report, self.report_age_s)
        self.awake = out.d1
        if out.hlc is not None:
            self.updates.append(dict(out.hlc))
        self.ends += int(out.end)
        self.out = out
        return out

    def until(self, stage: Stage, limit: int = 100, **report: Any) -> Output:
        for _ in range(limit):
            out = self.step(**report)
            if out.stage is stage:
                return out
        raise AssertionError(f"not in {stage} after {limit} steps: {self.p.status()}")

    @property
    def hlc(self) -> dict[str, Any]:
        assert self.out is not None and self.out.hlc is not None, self.out
        return dict(self.out.hlc)

    def frame(self, frame_id: int) -> dict[str, float]:
        assert self.out is not None
        for fid, values in self.out.frames:
            if fid == frame_id:
                # through the DBC, as the vehicle would see it
                decoded = fr.decode(fid, fr.encode(fid, values).data)
                assert decoded is not None
                return decoded
        raise AssertionError(
            f"frame {frame_id:#x} not sent: {[hex(f) for f, _ in self.out.frames]}"
        )

    # ------------------------------------------------------------------ scripts
    def to_transfer(self, current_a: float = 0.0) -> Output:
        """Authorize .. energy transfer, the way the daemon and a vehicle go through it."""
        self.step(state="authorized")
        self.until(Stage.PARAMETERS, state="allocated")
        self.ev(StatusChargingEnabled=1)
        self.step()
        self.until(Stage.INSULATION, state="cable_check")
        self.step(present_voltage_v=435.0)
        self.until(Stage.PRECHARGE, cable_check_done=True, isolation="valid")
        self.step(state="precharge", present_voltage_v=200.0)
        self.until(Stage.CONTACTORS, present_voltage_v=4.0)
        self.ev(StatusContactorOpen=0, ChargeCurrentRequest=10)
        self.until(Stage.MATCH, present_voltage_v=378.0)
        self.step(precharge_done=True)
        return self.until(Stage.TRANSFER, state="energy_transfer", present_current_a=current_a)
