"""Fault detection, reset conditions and command checks of a connector session."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bptd.api.protocol import ErrorCode
from bptd.session.config import DEAD_VOLTAGE_V, SessionConfig
from bptd.session.errors import SessionError
from bptd.session.ownership import Allocation
from bptd.session.states import (
    ENERGIZED,
    FAULTS,
    HOLDS_MODULES,
    Control,
    FaultReason,
    State,
    Trigger,
)
from bptd.session.types import (
    CP_A,
    CP_E,
    CP_F,
    F_CONTACTOR,
    F_CP_LOSS,
    F_ESTOP,
    F_INSULATION,
    IMD_FAULT,
    MODULE_FAULT,
    SAFETY_FAULT,
    CommandEvent,
    ConnectorInputs,
    ModuleInputs,
)

if TYPE_CHECKING:
    from bptd.session.machine import ConnectorSession

#: chipset fault-word bits that name a more precise reason than chipset_fault
_FAULT_WORD = (
    (F_ESTOP, FaultReason.ESTOP),
    (F_INSULATION, FaultReason.INSULATION_FAULT),
    (F_CP_LOSS, FaultReason.CP_LOST),
    (F_CONTACTOR, FaultReason.CONTACTOR_MISMATCH),
)


def accepted(t: float, command: str, result: Any) -> CommandEvent:
    return CommandEvent(t, command, True, str(result))


def refused(t: float, command: str, exc: SessionError) -> CommandEvent:
    return CommandEvent(t, command, False, exc.message, str(exc.code))


def _module_problem(n: int, m: ModuleInputs | None) -> tuple[FaultReason, str] | None:
    if m is None or not m.online:
        return FaultReason.MODULE_LOST, f"module {n} offline"
    if m.tripped:
        return FaultReason.MODULE_OVERTEMP, f"module {n} over-temperature trip"
    dc, ac = int(m.dcdc.get("state", 0)), int(m.afe.get("state", 0))
    if MODULE_FAULT in (dc, ac):
        words = (int(m.dcdc.get("fault_word", 0)), int(m.afe.get("fault_word", 0)))
        return FaultReason.MODULE_FAULT, f"module {n} fault (dcdc 0x{words[0]:04X}, " + (
            f"afe 0x{words[1]:04X})"
        )
    return None


def find_fault(
    s: ConnectorSession, now: float, inp: ConnectorInputs
) -> tuple[FaultReason, str] | None:
    """The first fault condition in the inputs, in order of severity, or None."""
    chip = inp.chipset
    if chip is None:
        if s.state is State.IDLE:
            return None  # nothing to protect: the connector is unavailable, not faulted
        return FaultReason.CHIPSET_LOST, "chipset node not operational"
    if int(chip.get("estop", 0)):
        return FaultReason.ESTOP, "e-stop input active"
    word = int(chip.get("fault_word", 0))
    for bit, reason in _FAULT_WORD:
        if word & bit:
            return reason, f"chipset fault word 0x{word:04X}"
    if word or int(chip.get("safety_state", 0)) == SAFETY_FAULT:
        return FaultReason.CHIPSET_FAULT, f"chipset fault word 0x{word:04X}"
    cp = int(chip.get("cp_state", CP_A))
    if s.state is not State.IDLE and cp in (CP_E, CP_F):
        return FaultReason.CP_LOST, f"control pilot in state {'ABCDEF'[cp]}"
    if s.state in ENERGIZED and cp == CP_A:
        return FaultReason.EV_UNPLUGGED, "control pilot A with the output energized"
    if s.state is State.WELDING_DETECTION and cp == CP_A and s.hv_voltage_v(inp) >= 60.0:
        return FaultReason.EV_UNPLUGGED, "unplugged before the output was dead"
    if s.state in ENERGIZED and int(chip.get("imd_state", 0)) == IMD_FAULT:
        return FaultReason.INSULATION_FAULT, "IMD fault while energized"
    alloc = s.allocation
    if s.state in HOLDS_MODULES and alloc is not None:
        for n in alloc.modules:
            m = inp.modules.get(n)
            problem = _module_problem(n, m)
            if problem is not None:
                return problem
            if m is not None and m.derating and n not in s.derating_noticed:
                s.derating_noticed.add(n)
                s.notice("module_derating", f"module {n} derating on over-temperature")
    if s.state is not State.WELDING_DETECTION:
        feedback = int(chip.get("contactor_feedback", 0))
        late = now - s.contactor_cmd_since > s.cfg.contactor_feedback_timeout_s
        if feedback != s.contactor_cmd and late:
            return FaultReason.CONTACTOR_MISMATCH, (
                f"commanded 0x{s.contactor_cmd:06X}, feedback 0x{feedback:06X}"
            )
    return None


def ev_limit_problem(cfg: SessionConfig, inp: ConnectorInputs) -> str | None:
    ev = inp.ev
    v = inp.measured_voltage_v
    if ev.max_voltage_v > 0 and v > ev.max_voltage_v + cfg.ev_voltage_margin_v:
        return f"output {v:.0f} V above the EV maximum {ev.max_voltage_v:.0f} V"
    i = inp.measured_current_a
    for limit, current, word in (
        (abs(ev.max_charge_current_a), i, "charge"),
        (abs(ev.max_discharge_current_a), -i, "discharge"),
    ):
        if current > limit * (1.0 + cfg.ev_current_margin) + cfg.ev_current_margin_a:
            return f"{word} current {current:.1f} A above the EV maximum {limit:.1f} A"
    return None


def require_dead(s: ConnectorSession, alloc: Allocation) -> None:
    """The contactor configuration changes only while the affected outputs are dead."""
    chip = s.inputs.chipset
    if chip is None:
        raise SessionError(ErrorCode.WRONG_STATE, f"{s.name}: chipset not reporting")
    hv = s.hv_voltage_v(s.inputs)
    if hv >= DEAD_VOLTAGE_V:
        raise SessionError(
            ErrorCode.WRONG_STATE, f"{s.name}: output at {hv:.0f} V; wait below 60 V"
        )
    for n in alloc.modules:
        m = s.inputs.modules.get(n)
        problem = _module_problem(n, m)
        if problem is not None:
            raise SessionError(ErrorCode.NOT_ALLOWED, f"{s.name}: {problem[1]}")
        assert m is not None
        v = float(m.dcdc.get("dc_voltage_v", 0.0))
        if v >= DEAD_VOLTAGE_V:
            raise SessionError(
                ErrorCode.WRONG_STATE, f"{s.name}: module {n} output at {v:.0f} V; wait below 60 V"
            )


def setpoint(s: ConnectorSession, power_w: Any, reactive_power_var: Any) -> dict[str, Any]:
    if isinstance(power_w, bool) or not isinstance(power_w, int | float):
        raise SessionError(ErrorCode.INVALID_ARGUMENT, "power_w must be a number")
    if not math.isfinite(power_w):
        raise SessionError(ErrorCode.INVALID_ARGUMENT, "power_w must be finite")
    if reactive_power_var is not None and (
        isinstance(reactive_power_var, bool)
        or not isinstance(reactive_power_var, int | float)
        or not math.isfinite(reactive_power_var)
    ):
        raise SessionError(ErrorCode.INVALID_ARGUMENT, "reactive_power_var must be a number")
    if s.control is not Control.DYNAMIC:
        raise SessionError(
            ErrorCode.NOT_ALLOWED, f"{s.name}: control is scheduled; the EV target is followed"
        )
    if power_w < 0:
        if not s.bidirectional:
            raise SessionError(
                ErrorCode.NOT_ALLOWED, f"{s.name}: discharge needs set_mode bidirectional=true"
            )
        ev = s.inputs.ev
        if ev.present and not ev.bpt:
            raise SessionError(ErrorCode.NOT_ALLOWED, f"{s.name}: the vehicle cannot discharge")
    cap = s.connector.max_power_w
    effective = max(-cap, min(cap, float(power_w)))
    s.setpoint_w = effective
    s.reactive_power_var = None if reactive_power_var is None else float(reactive_power_var)
    return {
        "power_w": effective,
        "requested_power_w": float(power_w),
        "clamped": effective != power_w,
        "reactive_power_var": s.reactive_power_var,
    }


def cause_persists(s: ConnectorSession, reason: FaultReason, inp: ConnectorInputs) -> str | None:
    """Why the fault's cause is still there (from the latest inputs), or None if gone."""
    chip = inp.chipset
    if chip is None:
        return "chipset not reporting"
    feedback = int(chip.get("contactor_feedback", 0))
    if feedback:
        return f"contactor feedback 0x{feedback:06X} with every contactor commanded open"
    hv = s.hv_voltage_v(inp)
    if hv >= DEAD_VOLTAGE_V:
        return f"output still at {hv:.0f} V"
    if reason is FaultReason.ESTOP and int(chip.get("estop", 0)):
        return "e-stop still pressed"
    if reason is FaultReason.CP_LOST and int(chip.get("cp_state", CP_A)) in (CP_E, CP_F):
        return "control pilot still in E/F"
    if reason is FaultReason.INSULATION_FAULT and int(chip.get("imd_state", 0)) == IMD_FAULT:
        return "IMD still reports a fault"
    if reason in (FaultReason.MODULE_LOST, FaultReason.MODULE_OVERTEMP, FaultReason.MODULE_FAULT):
        alloc = s.allocation
        for n in alloc.modules if alloc else ():
            m = inp.modules.get(n)
            if m is None or not m.online:
                return f"module {n} still offline"
            if m.tripped:
                return f"module {n} still over temperature"
    return None


def fault_step(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    """In fault: open once safe (or on the open timeout), then run an accepted reset."""
    assert s.fault is not None
    current = abs(inp.measured_current_a)
    if not s.fault_opened:
        gone = s.module_gone(inp)
        if (
            current < s.cfg.stop_current_a
            or gone
            or FAULTS[s.fault].open_at_once
            or s.elapsed(now) > s.cfg.fault_open_timeout_s
        ):
            s.open_fault_contactors(current)
    if not s.reset_requested:
        return
    if s.reset_started is None:
        s.reset_started = now
        return
    if now - s.reset_started < s.cfg.reset_pulse_s:
        return
    latched = _latched(s, inp)
    if latched is None:
        s.reset_requested, s.reset_started = False, None
        s.fault, s.fault_detail = None, ""
        plugged = inp.chipset is not None and int(inp.chipset.get("cp_state", CP_A)) != CP_A
        s.transition(Trigger.RESET if plugged else Trigger.RESET_UNPLUGGED, "reset")
    elif now - s.reset_started > s.cfg.reset_timeout_s:
        s.reset_requested, s.reset_started = False, None
        s.notice("reset_failed", latched)


def _latched(s: ConnectorSession, inp: ConnectorInputs) -> str | None:
    chip = inp.chipset
    if chip is None:
        return "chipset not reporting"
    word = int(chip.get("fault_word", 0))
    if word or int(chip.get("safety_state", 0)) == SAFETY_FAULT:
        return f"chipset still latched (fault word 0x{word:04X})"
    alloc = s.allocation
    for n in alloc.modules if alloc else ():
        problem = _module_problem(n, inp.modules.get(n))
        if problem is not None:
            return problem[1]
    return None
