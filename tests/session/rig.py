"""A tiny fake plant for session tests: turns a tick's outputs into the next tick's inputs.

Not the simulator: contactor feedback follows the command after 30 ms, the output voltage
follows the setpoint during cable check / precharge, the measured current follows the
clamped requested current at a fixed ramp, the IMD answers 0.5 s after it is switched
on, and a scripted EV walks the ISO 15118 phases as the session's HLC report allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bptd.session import (
    ConnectorInputs,
    ConnectorOutputs,
    EvData,
    EvPhase,
    LimitsInput,
    ModuleInputs,
    Notice,
    State,
    Station,
)
from bptd.session.states import ENERGIZED
from bptd.session.types import (
    CP_A,
    CP_B,
    CP_C,
    F_ESTOP,
    F_INSULATION,
    IMD_FAULT,
    IMD_OFF,
    IMD_VALID,
    IMD_WARNING,
    MODULE_FAULT,
    OUTPUTS,
)

DT = 0.01
CONTACTOR_DELAY_S = 0.03
RAMP_A_PER_S = 150.0
MODULE_CHARGE_A, MODULE_DISCHARGE_A = 30.0, 32.0


@dataclass
class FakeModule:
    n: int
    online: bool = True
    tripped: bool = False
    derating: bool = False
    faulted: bool = False
    state: int = 0

    def inputs(self, voltage_v: float) -> ModuleInputs:
        dc_state = MODULE_FAULT if self.faulted else self.state
        return ModuleInputs(
            online=self.online,
            dcdc={"state": dc_state, "dc_voltage_v": voltage_v, "fault_word": 0},
            afe={"state": 0},
            derating=self.derating,
            tripped=self.tripped,
        )


@dataclass
class FakeEv:
    """A scripted vehicle: follows the session the way an ISO 15118 EV would."""

    bpt: bool = True
    battery_v: float = 380.0
    max_voltage_v: float = 450.0
    min_voltage_v: float = 300.0
    max_charge_a: float = 125.0
    max_discharge_a: float = 100.0
    target_current_a: float = 50.0
    plugged: bool = False
    phase: EvPhase = EvPhase.NONE
    contactors: bool = False
    ready: bool = False
    wants_stop: bool = False
    cooperative: bool = True  # False: stays in its phase (timeouts)

    def advance(self, out: ConnectorOutputs | None, current_a: float) -> None:
        if not self.plugged:
            self.phase, self.contactors, self.ready = EvPhase.NONE, False, False
            return
        if out is None or not self.cooperative:
            return
        st, hlc = out.state, out.hlc
        if self.wants_stop and self.phase is EvPhase.CHARGE_LOOP:
            self.phase = EvPhase.POWER_DELIVERY_STOP
        if st in (State.CONNECTED, State.IDLE):
            self.phase = EvPhase.AUTHORIZATION
        elif st is State.AUTHORIZED:
            self.phase = EvPhase.PARAMETER_DISCOVERY
        elif st is State.ALLOCATED:
            self.phase, self.ready = EvPhase.CABLE_CHECK, True
        elif st is State.CABLE_CHECK and hlc.cable_check_done:
            self.phase = EvPhase.PRECHARGE
        elif st is State.PRECHARGE and hlc.precharge_done:
            self.phase, self.contactors = EvPhase.POWER_DELIVERY_START, True
        elif st is State.ENERGY_TRANSFER and self.phase is EvPhase.POWER_DELIVERY_START:
            self.phase = EvPhase.CHARGE_LOOP
        elif st in (State.STOPPING, State.WELDING_DETECTION) and abs(current_a) < 1.0:
            self.contactors = False
            self.phase = EvPhase.WELDING_DETECTION
        elif st is State.FINISHED:
            self.phase, self.ready, self.contactors = EvPhase.SESSION_STOP, False, False
        if st is State.FAULT:
            self.contactors, self.ready = False, False

    def data(self) -> EvData:
        if not self.plugged:
            return EvData()
        return EvData(
            present=True,
            bpt=self.bpt,
            phase=self.phase,
            max_voltage_v=self.max_voltage_v,
            min_voltage_v=self.min_voltage_v,
            max_charge_current_a=self.max_charge_a,
            max_discharge_current_a=self.max_discharge_a if self.bpt else 0.0,
            max_charge_power_w=50000.0,
            max_discharge_power_w=25000.0 if self.bpt else 0.0,
            target_voltage_v=self.battery_v if self.phase is EvPhase.PRECHARGE else 420.0,
            target_current_a=self.target_current_a,
            present_voltage_v=self.battery_v,
            contactors_closed=self.contactors,
            ready=self.ready,
        )


@dataclass
class FakeConnector:
    name: str
    ev: FakeEv = field(default_factory=FakeEv)
    chipset_online: bool = True
    estop: bool = False
    insulation_ohm: float = 10e6
    welded: int = 0
    stuck_open: int = 0
    feedback: int = 0
    pending: dict[int, float] = field(default_factory=dict)
    faults: int = 0
    hv_v: float = 0.0
    current_a: float = 0.0
    imd_state: int = IMD_OFF
    imd_due: float | None = None
    prev_reset: int = 0
    cp_override: int | None = None
    imd_silent: bool = False  # the IMD never gives a result
    limits: LimitsInput | None = None

    @property
    def cp(self) -> int:
        if self.cp_override is not None:
            return self.cp_override
        if not self.ev.plugged:
            return CP_A
        return CP_C if self.ev.ready else CP_B

    def apply(self, now: float, out: ConnectorOutputs, volts_per_module: float) -> None:
        cmd = out.chipset
        if cmd.fault_reset and not self.prev_reset:
            keep = (F_ESTOP if self.estop else 0) | (
                F_INSULATION if self.imd_state == IMD_FAULT else 0
            )
            self.faults &= keep
        self.prev_reset = cmd.fault_reset
        target = 0 if self.faults else cmd.contactor_command
        for bit in range(32):
            b = 1 << bit
            want, have = bool(target & b), bool(self.feedback & b)
            if want == have or (not want and self.welded & b) or (want and self.stuck_open & b):
                self.pending.pop(b, None)
                continue
            due = self.pending.setdefault(b, now + CONTACTOR_DELAY_S)
            if now >= due:
                self.feedback ^= b
                self.pending.pop(b, None)
        if self.estop:
            self.faults |= F_ESTOP
        closed = self.feedback & OUTPUTS == OUTPUTS
        # IMD
        if cmd.imd_command:
            if self.imd_due is None:
                self.imd_due = now + 0.5
            elif now >= self.imd_due and not self.imd_silent:
                per_v = self.insulation_ohm / 1000.0
                self.imd_state = (
                    IMD_FAULT if per_v < 100 else IMD_WARNING if per_v < 500 else IMD_VALID
                )
        else:
            self.imd_state, self.imd_due = IMD_OFF, None
        if self.imd_state == IMD_FAULT and closed:
            self.faults |= F_INSULATION
        # current
        p = out.power
        running = any(m.state_request & 0x7F == 2 for m in out.modules.values())
        if closed and self.ev.contactors and p.phase_current_limit_a is None and running:
            lim = self.limits or LimitsInput()
            want = max(lim.discharge_current_a, min(lim.charge_current_a, p.requested_current_a))
            if p.safety_stop:
                want = 0.0
            step = RAMP_A_PER_S * DT
            self.current_a += max(-step, min(step, want - self.current_a))
        else:
            self.current_a = 0.0
        # voltage at the inlet
        if self.ev.contactors:
            self.hv_v = self.ev.battery_v + 0.08 * self.current_a
        elif closed and running and p.phase_current_limit_a:
            setpoint = p.charge_voltage_v
            self.hv_v += max(-20.0, min(20.0, setpoint - self.hv_v))  # 2 kV/s at 2 A
        else:
            self.hv_v = max(0.0, self.hv_v - 300.0 * DT) if not closed or not running else self.hv_v

    def inputs(self, modules: dict[int, FakeModule]) -> ConnectorInputs:
        chip = None
        if self.chipset_online:
            chip = {
                "cp_state": self.cp,
                "estop": int(self.estop),
                "contactor_feedback": self.feedback,
                "hv_voltage_v": self.hv_v,
                "insulation_kohm": 65535
                if self.imd_state == IMD_OFF
                else self.insulation_ohm / 1e3,
                "imd_state": self.imd_state,
                "safety_state": 3 if self.faults else 2,
                "fault_word": self.faults,
            }
        return ConnectorInputs(
            chipset=chip,
            modules={n: m.inputs(self.hv_v) for n, m in modules.items()},
            ev=self.ev.data(),
            limits=self.limits or LimitsInput(),
            measured_current_a=self.current_a,
            measured_voltage_v=self.hv_v,
        )


@dataclass
class Tick:
    t: float
    inputs: ConnectorInputs
    out: ConnectorOutputs


class Rig:
    """A station of sessions plus the fake plant, stepped every 10 ms of simulated time."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.now = 0.0
        self.modules = {n: FakeModule(n) for n in station.facts.modules}
        self.conn = {name: FakeConnector(name) for name in station.sessions}
        self.last: dict[str, ConnectorOutputs | None] = dict.fromkeys(station.sessions)
        self.history: dict[str, list[Tick]] = {name: [] for name in station.sessions}
        for c in self.conn.values():
            c.limits = LimitsInput(charge_current_a=60.0, discharge_current_a=-64.0)

    def session(self, name: str = "ccs"):
        return self.station[name]

    def tick(self) -> dict[str, ConnectorOutputs]:
        self.now = round(self.now + DT, 6)
        inputs = {}
        for name, c in self.conn.items():
            c.ev.advance(self.last[name], c.current_a)
            inputs[name] = c.inputs(self.modules)
        outs = self.station.step(self.now, inputs)
        for name, out in outs.items():
            self.history[name].append(Tick(self.now, inputs[name], out))
            check_invariants(self.history[name], self.station[name].cfg.stop_current_a)
            self.last[name] = out
            for n, m in out.modules.items():
                self.modules[n].state = m.state_request & 0x7F
            self.conn[name].apply(self.now, out, 0.0)
        return outs

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / DT)):
            self.tick()

    def run_until(self, name: str, state: State, within_s: float = 30.0) -> Tick:
        for _ in range(round(within_s / DT)):
            self.tick()
            if self.station[name].state is state:
                return self.history[name][-1]
        raise AssertionError(
            f"{name} not in {state} after {within_s} s: {self.station[name].state}"
        )

    def events(self, name: str = "ccs") -> list:
        return [e for tick in self.history[name] for e in tick.out.events]

    def states(self, name: str = "ccs") -> list[State]:
        """Every state the session went through, from its state-changed events."""
        from bptd.session import StateChanged

        changes = [e for e in self.events(name) if isinstance(e, StateChanged)]
        return [State.IDLE] + [e.to_state for e in changes]


def check_invariants(history: list[Tick], stop_current_a: float) -> None:
    """Rules every tick must keep (also the hypothesis property)."""
    tick = history[-1]
    out, inp = tick.out, tick.inputs
    p = out.power
    if p.requested_current_a != 0.0:
        assert out.state is State.ENERGY_TRANSFER, (out.state, p)
    if out.state not in (State.ENERGY_TRANSFER, State.STOPPING, State.FAULT):
        assert p.phase_current_limit_a is not None and p.phase_current_limit_a <= 2.0, out
    if p.requested_current_a < 0:
        assert inp.ev.bpt and p.discharge_allowed
    if len(history) >= 2:
        before = history[-2].out.chipset.contactor_command
        now_cmd = out.chipset.contactor_command
        if (
            before & OUTPUTS
            and not now_cmd & OUTPUTS
            and abs(inp.measured_current_a) >= (stop_current_a)
        ):
            assert out.state is State.FAULT, out
            assert any(isinstance(e, Notice) and e.kind == "opened_under_load" for e in out.events)
    if out.chipset.contactor_command & OUTPUTS:
        assert out.state in ENERGIZED or out.state is State.FAULT, out
    assert math.isfinite(p.requested_current_a)
