"""Physical model of a connector's safety chipset: control pilot, contactors, IMD, lock, e-stop.

The chipset enforces its own safety rules and never depends on the supervisor: it opens
every contactor on e-stop, on an insulation fault, on control-pilot loss, when the
supervisor heartbeat or its command RPDO stops, on a contactor feedback mismatch and when
a module is routed to two connectors at once. Faults latch until a ``fault_reset`` edge
once their cause is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bptd import emcy
from bptd.codes import (
    CP_A,
    CP_B,
    CP_C,
    CP_D,
    CP_E,
    CP_F,
    CP_LETTERS,
    CP_MODE_E,
    CP_MODE_F,
    CP_MODE_PWM,
    CP_MODE_STEADY,
    CP_VOLTS,
    F_CONTACTOR,
    F_CP_LOSS,
    F_ESTOP,
    F_HEARTBEAT,
    F_INSULATION,
    F_OVERVOLTAGE,
    F_ROUTING,
    F_RPDO_TIMEOUT,
    IMD_FAULT,
    IMD_MEASURING,
    IMD_OFF,
    IMD_VALID,
    IMD_WARNING,
    OUTPUTS,
    SAFETY_ARMED,
    SAFETY_FAULT,
    SAFETY_INIT,
    SAFETY_SAFE,
)
from bptd.config import SimConfig
from bptd.emcy import Emcy
from bptd.sim.vehicle import Vehicle

FAULT_EMCY = {
    F_ESTOP: emcy.ESTOP,
    F_INSULATION: emcy.INSULATION_FAULT,
    F_CP_LOSS: emcy.CP_LOSS,
    F_HEARTBEAT: emcy.HEARTBEAT_LOST,
    F_CONTACTOR: emcy.CONTACTOR_MISMATCH,
    F_ROUTING: emcy.ROUTING_CONFLICT,
    F_RPDO_TIMEOUT: emcy.RPDO_TIMEOUT,
    F_OVERVOLTAGE: emcy.DC_OVER_VOLTAGE,
}

COMMANDS = {
    "cp_mode": CP_MODE_STEADY,
    "pwm_duty_permille": 0,
    "contactor_command": 0,
    "lock_command": 0,
    "imd_command": 0,
    "fault_reset": 0,
}
PARAMS = {
    "imd_warning_ohm_per_v": 500,
    "imd_fault_ohm_per_v": 100,
    "imd_measure_time_ms": 1000,
    "contactor_feedback_timeout_ms": 200,
    "max_inlet_voltage_v": 1050.0,
}


@dataclass
class ChipsetModel:
    name: str
    sim: SimConfig
    cmd: dict[str, float] = field(default_factory=lambda: dict(COMMANDS))
    params: dict[str, float] = field(default_factory=lambda: dict(PARAMS))
    operational: bool = False
    armed: bool = False  # a command RPDO has been received since boot
    vehicle: Vehicle | None = None
    estop: bool = False
    cp_short: bool = False
    insulation_ohm: float = 10e6
    welded: int = 0  # contactor bits that stay closed
    feedback: int = 0
    faults: int = 0
    lock_state: int = 0
    imd_state: int = IMD_OFF
    measured_insulation_ohm: float | None = None
    inlet_voltage_v: float = 0.0
    connector_current_a: float = 0.0
    routing_conflict: bool = False
    emcys: list[Emcy] = field(default_factory=list)
    _pending: dict[int, float] = field(default_factory=dict)  # bit -> time its change lands
    _mismatch_since: float | None = None
    _lock_due: float | None = None
    _imd_due: float | None = None
    _prev_reset: bool = False

    # ------------------------------------------------------------------ inputs
    def comm_fault(self, kind: str) -> None:
        self._latch(F_HEARTBEAT if kind == "heartbeat" else F_RPDO_TIMEOUT)

    def reset(self) -> None:
        self.cmd = dict(COMMANDS)
        self.params = dict(PARAMS)
        self.armed = False
        self.faults = 0
        self.imd_state = IMD_OFF
        self._imd_due = None
        self.measured_insulation_ohm = None

    def _latch(self, bit: int) -> None:
        if not self.faults & bit:
            self.faults |= bit
            self.emcys.append(Emcy(FAULT_EMCY[bit]))

    # ------------------------------------------------------------------ derived
    @property
    def plugged(self) -> bool:
        return self.vehicle is not None

    @property
    def cp_state(self) -> int:
        if self.cp_short:
            return CP_E
        mode = int(self.cmd["cp_mode"])
        if self.estop or mode == CP_MODE_F:
            return CP_F
        if mode == CP_MODE_E:
            return CP_E
        if not self.plugged:
            return CP_A
        assert self.vehicle is not None
        return CP_LETTERS.index(self.vehicle.cp)

    @property
    def pwm_on(self) -> bool:
        return int(self.cmd["cp_mode"]) == CP_MODE_PWM and self.cp_state in (CP_A, CP_B, CP_C, CP_D)

    @property
    def outputs_closed(self) -> bool:
        return self.feedback & OUTPUTS == OUTPUTS

    @property
    def safety_state(self) -> int:
        if self.faults:
            return SAFETY_FAULT
        if not self.armed:
            return SAFETY_INIT
        if not self.operational:
            return SAFETY_SAFE
        return SAFETY_ARMED

    def allowed_bits(self) -> int:
        """Contactor bits the chipset lets close now."""
        if self.faults or not self.operational or not self.armed:
            return 0
        return int(self.cmd["contactor_command"]) & 0xFFFFFFFF

    # ------------------------------------------------------------------ step
    def step(self, now: float, dt_s: float) -> None:
        reset = bool(self.cmd["fault_reset"])
        if reset and not self._prev_reset:
            self._fault_reset()
        self._prev_reset = reset
        self._safety_rules()
        self._contactors(now)
        self._lock(now)
        self._imd(now)

    def _fault_reset(self) -> None:
        keep = 0
        if self.estop:
            keep |= F_ESTOP
        if self.imd_state == IMD_FAULT:
            keep |= F_INSULATION
        if self.routing_conflict:
            keep |= F_ROUTING
        if self.welded & ~self.allowed_bits():
            keep |= F_CONTACTOR
        before = self.faults
        self.faults &= keep
        if before and not self.faults:
            self.emcys.append(Emcy(emcy.ERROR_RESET))
            self._mismatch_since = None

    def _safety_rules(self) -> None:
        if self.estop:
            self._latch(F_ESTOP)
        if self.routing_conflict:
            self._latch(F_ROUTING)
        if self.feedback & OUTPUTS and self.cp_state in (CP_A, CP_E):
            self._latch(F_CP_LOSS)
        if self.imd_state == IMD_FAULT and self.feedback & OUTPUTS:
            self._latch(F_INSULATION)
        if self.inlet_voltage_v > float(self.params["max_inlet_voltage_v"]):
            self._latch(F_OVERVOLTAGE)

    def _contactors(self, now: float) -> None:
        target = self.allowed_bits()
        delay = self.sim.contactor_delay_s
        for bit_no in range(32):
            bit = 1 << bit_no
            want = bool(target & bit)
            have = bool(self.feedback & bit)
            if want == have:
                self._pending.pop(bit, None)
                continue
            if not want and self.welded & bit:
                continue  # welded: stays closed
            due = self._pending.setdefault(bit, now + delay)
            if now >= due:
                self.feedback ^= bit
                self._pending.pop(bit, None)
        mismatch = self.feedback != target
        if mismatch:
            if self._mismatch_since is None:
                self._mismatch_since = now
            timeout = float(self.params["contactor_feedback_timeout_ms"]) / 1000.0
            if now - self._mismatch_since > max(timeout, delay * 2):
                self._latch(F_CONTACTOR)
        else:
            self._mismatch_since = None

    def _lock(self, now: float) -> None:
        want = 1 if (int(self.cmd["lock_command"]) and self.plugged) else 0
        if not self.plugged:
            self.lock_state = 0
            self._lock_due = None
            return
        if want != self.lock_state:
            if self._lock_due is None:
                self._lock_due = now + self.sim.lock_delay_s
            elif now >= self._lock_due:
                self.lock_state = want
                self._lock_due = None
        else:
            self._lock_due = None

    def _imd(self, now: float) -> None:
        if not int(self.cmd["imd_command"]) or not self.operational:
            self.imd_state = IMD_OFF
            self._imd_due = None
            return
        if self._imd_due is None:
            self._imd_due = now + min(
                float(self.params["imd_measure_time_ms"]) / 1000.0, self.sim.imd_measure_time_s
            )
            if self.imd_state == IMD_OFF:
                self.imd_state = IMD_MEASURING
            return
        if now < self._imd_due:
            return
        self._imd_due = None  # measure again, continuously
        self.measured_insulation_ohm = self.insulation_ohm
        v_ref = float(self.params["max_inlet_voltage_v"])
        per_volt = self.insulation_ohm / v_ref
        if per_volt < float(self.params["imd_fault_ohm_per_v"]):
            self.imd_state = IMD_FAULT
        elif per_volt < float(self.params["imd_warning_ohm_per_v"]):
            self.imd_state = IMD_WARNING
        else:
            self.imd_state = IMD_VALID

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, float]:
        cp = self.cp_state
        if self.measured_insulation_ohm is None:
            kohm = 65535
        else:
            kohm = min(65534, round(self.measured_insulation_ohm / 1000.0))
        return {
            "cp_state": cp,
            "cp_voltage_v": CP_VOLTS[cp],
            "pwm_duty_measured_permille": int(self.cmd["pwm_duty_permille"]) if self.pwm_on else 0,
            "proximity": 1 if self.plugged else 0,
            "lock_state": self.lock_state,
            "estop": 1 if self.estop else 0,
            "contactor_feedback": self.feedback,
            "hv_voltage_v": self.inlet_voltage_v,
            "insulation_kohm": kohm,
            "imd_state": self.imd_state,
            "safety_state": self.safety_state,
            "fault_word": self.faults,
        }
