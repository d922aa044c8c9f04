"""One handler per session state: what the state drives, its timeout, and when it leaves.

Each :class:`Phase` declares the chipset / module outputs of its state, its own timeout
(a :class:`~bptd.session.config.SessionConfig` field) and a ``step`` function that decides
transitions from the tick's inputs. Failures go through ``session.fail(reason)`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bptd.session.config import DEAD_VOLTAGE_V
from bptd.session.states import EV_STOPPING, EvPhase, FaultReason, State, Trigger
from bptd.session.types import (
    CP_A,
    IMD_FAULT,
    IMD_VALID,
    IMD_WARNING,
    INSULATION_NOT_MEASURED_KOHM,
    MODULE_OFF,
    MODULE_RUNNING,
    MODULE_STANDBY,
    OUTPUTS,
    ConnectorInputs,
    Notice,
)

if TYPE_CHECKING:
    from bptd.session.machine import ConnectorSession

StepFn = Callable[["ConnectorSession", float, ConnectorInputs], None]


@dataclass(frozen=True)
class Phase:
    state: State
    pwm: bool  # 5 % PWM on the control pilot (B2/C2)
    outputs: bool  # DC+ / DC- output contactors closed
    routing: bool  # module routing (+ series link) contactors closed
    lock: bool
    imd: bool
    module_state: int  # dcdc state request of the allocated modules
    afe_state: int
    step: StepFn
    timeout: str | None = None  # SessionConfig field name
    timeout_reason: FaultReason | None = None


def _cp(inp: ConnectorInputs) -> int | None:
    return None if inp.chipset is None else int(inp.chipset.get("cp_state", CP_A))


def _unplug_or_stay(s: ConnectorSession, now: float, inp: ConnectorInputs) -> bool:
    if _cp(inp) == CP_A:
        s.transition(Trigger.UNPLUG, "vehicle unplugged (CP A)")
        return True
    return False


def _idle(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    cp = _cp(inp)
    if cp is not None and cp != CP_A:
        s.transition(Trigger.PLUG, f"vehicle connected (CP {'ABCDEF'[cp]})")


def _waiting(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    _unplug_or_stay(s, now, inp)


def _allocated(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    if _unplug_or_stay(s, now, inp):
        return
    if s.start_requested and inp.ev.ready and inp.ev.phase is EvPhase.CABLE_CHECK:
        s.transition(Trigger.CABLE_CHECK_REQUESTED, "vehicle requests the cable check (CP C)")


def _ev_left(s: ConnectorSession, inp: ConnectorInputs) -> bool:
    """The vehicle ends the transfer: stop phases, or CP back to B."""
    if inp.ev.phase in EV_STOPPING:
        s.transition(Trigger.STOP, f"vehicle requested stop ({inp.ev.phase.value})")
        return True
    if not inp.ev.ready:
        s.transition(Trigger.STOP, "vehicle left CP C/D")
        return True
    return False


def _cable_check(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    cfg = s.cfg
    if _ev_left(s, inp):
        return
    hv = s.hv_voltage_v(inp)
    closed = inp.chipset is not None and int(inp.chipset.get("contactor_feedback", 0)) & OUTPUTS
    if (
        not s.cable.voltage_ok
        and closed
        and abs(hv - s.cable.test_voltage_v) <= (cfg.cable_check_voltage_band_v)
    ):
        s.cable.voltage_ok = True
    if s.cable.voltage_ok and not s.cable.done and inp.chipset is not None:
        result = _isolation(s, inp)
        if result == "fault" or (result == "warning" and not cfg.imd_warning_allowed):
            s.fail(FaultReason.INSULATION_FAULT, f"IMD {result} at {hv:.0f} V")
            return
        if result in ("valid", "warning"):
            s.cable.done, s.cable.isolation, s.cable.done_at = True, result, now
            if result == "warning":
                s.notice("imd_warning", f"insulation warning at {hv:.0f} V; session continues")
    if not s.cable.done:
        if s.elapsed(now) > cfg.cable_check_timeout_s:
            what = "no IMD result" if s.cable.voltage_ok else "test voltage not reached"
            s.fail(FaultReason.IMD_TIMEOUT, f"{what} after {cfg.cable_check_timeout_s:g} s")
        return
    if inp.ev.phase is EvPhase.PRECHARGE:
        s.transition(Trigger.CABLE_CHECK_PASSED, f"isolation {s.cable.isolation}")
    elif now - s.cable.done_at > cfg.ev_timeout_s:
        s.fail(FaultReason.EV_TIMEOUT, "no PreChargeReq after the cable check")


def _isolation(s: ConnectorSession, inp: ConnectorInputs) -> str:
    """Worst of the chipset's verdict and ours from insulation_kohm and the test voltage."""
    assert inp.chipset is not None
    state = int(inp.chipset.get("imd_state", 0))
    verdict = {IMD_VALID: "valid", IMD_WARNING: "warning", IMD_FAULT: "fault"}.get(state)
    if verdict is None:
        return "measuring"
    kohm = float(inp.chipset.get("insulation_kohm", INSULATION_NOT_MEASURED_KOHM))
    if kohm < INSULATION_NOT_MEASURED_KOHM:
        per_volt = kohm * 1000.0 / max(s.cable.test_voltage_v, 1.0)
        if per_volt < s.cfg.imd_fault_ohm_per_v:
            return "fault"
        if per_volt < s.cfg.imd_warning_ohm_per_v and verdict == "valid":
            return "warning"
    return verdict


def _precharge(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    cfg = s.cfg
    if _ev_left(s, inp):
        return
    target = inp.ev.target_voltage_v or inp.ev.present_voltage_v
    if target > 0:
        s.precharge.wanted_v = target
        s.precharge.target_v = min(target, s.station_max_voltage_v(inp))
    hv = s.hv_voltage_v(inp)
    if not s.precharge.done:
        if s.precharge.wanted_v > 0 and abs(hv - s.precharge.wanted_v) <= cfg.precharge_band_v:
            s.precharge.done, s.precharge.done_at = True, now
        elif s.elapsed(now) > cfg.precharge_timeout_s:
            s.fail(
                FaultReason.PRECHARGE_TIMEOUT,
                f"output {hv:.0f} V, target {s.precharge.target_v:.0f} V "
                f"+/- {cfg.precharge_band_v:g} V after {cfg.precharge_timeout_s:g} s",
            )
        return
    if inp.ev.contactors_closed and inp.ev.phase in (
        EvPhase.POWER_DELIVERY_START,
        EvPhase.CHARGE_LOOP,
    ):
        s.transition(Trigger.POWER_DELIVERY, "vehicle closed its contactors (PowerDelivery)")
    elif now - s.precharge.done_at > cfg.ev_timeout_s:
        s.fail(FaultReason.EV_TIMEOUT, "no PowerDelivery start after the precharge")


def _energy_transfer(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    if _ev_left(s, inp):
        return
    if not inp.ev.contactors_closed:
        s.transition(Trigger.STOP, "vehicle reports its contactors open")
        return
    problem = s.ev_limit_problem(inp)
    if problem is None:
        s.violation_since = None
        return
    if s.violation_since is None:
        s.violation_since = now
    if now - s.violation_since >= s.cfg.ev_limit_debounce_s:
        s.fail(FaultReason.EV_LIMITS_VIOLATED, problem)


def _stopping(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    current = abs(inp.measured_current_a)
    if current < s.cfg.stop_current_a:
        s.transition(Trigger.CURRENT_ZERO, f"current {current:.2f} A below the threshold")
    elif s.elapsed(now) > s.cfg.stop_timeout_s:
        s.fail(FaultReason.STOP_TIMEOUT, f"still {current:.1f} A after {s.cfg.stop_timeout_s:g} s")


def _welding(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    cfg = s.cfg
    elapsed = s.elapsed(now)
    feedback = 0 if inp.chipset is None else int(inp.chipset.get("contactor_feedback", 0))
    if feedback & OUTPUTS:
        if elapsed > cfg.contactor_feedback_timeout_s:
            names = [n for b, n in ((1, "DC+"), (2, "DC-")) if feedback & b]
            s.fail(FaultReason.WELDING_DETECTED, f"{' and '.join(names)} still closed")
        return
    hv = s.hv_voltage_v(inp)
    if hv < DEAD_VOLTAGE_V:
        s.transition(Trigger.WELDING_PASSED, f"output {hv:.0f} V, contactors open")
    elif elapsed > cfg.welding_timeout_s:
        if inp.ev.contactors_closed or not inp.ev.present:
            # our feedback says open: the live inlet is the vehicle's side (it says so, or
            # it no longer says anything), not a welded contactor of ours
            why = "EV contactors closed" if inp.ev.present else "no word from the vehicle"
            s.events.append(Notice(now, "ev_contactors_closed", f"inlet at {hv:.0f} V: {why}"))
            s.transition(Trigger.WELDING_PASSED, "our contactors open; EV side still closed")
        else:
            s.fail(FaultReason.WELDING_DETECTED, f"output still {hv:.0f} V after opening")


def _fault(s: ConnectorSession, now: float, inp: ConnectorInputs) -> None:
    s.fault_step(now, inp)


_R, _S, _O = MODULE_RUNNING, MODULE_STANDBY, MODULE_OFF
PHASES: dict[State, Phase] = {
    p.state: p
    for p in (
        Phase(State.IDLE, False, False, False, False, False, _O, _O, _idle),
        Phase(State.CONNECTED, True, False, False, False, False, _O, _O, _waiting),
        Phase(State.AUTHORIZED, True, False, False, True, False, _O, _O, _waiting),
        Phase(State.ALLOCATED, True, False, True, True, False, _S, _S, _allocated),
        Phase(
            State.CABLE_CHECK, True, True, True, True, True, _R, _R, _cable_check,
            "cable_check_timeout_s", FaultReason.IMD_TIMEOUT,
        ),
        Phase(
            State.PRECHARGE, True, True, True, True, True, _R, _R, _precharge,
            "precharge_timeout_s", FaultReason.PRECHARGE_TIMEOUT,
        ),
        Phase(State.ENERGY_TRANSFER, True, True, True, True, True, _R, _R, _energy_transfer),
        Phase(
            State.STOPPING, True, True, True, True, True, _R, _R, _stopping,
            "stop_timeout_s", FaultReason.STOP_TIMEOUT,
        ),
        Phase(
            State.WELDING_DETECTION, True, False, True, True, False, _O, _S, _welding,
            "welding_timeout_s", FaultReason.WELDING_DETECTED,
        ),
        Phase(State.FINISHED, False, False, False, False, False, _O, _O, _waiting),
        Phase(
            State.FAULT, False, False, False, True, False, _O, _O, _fault,
            "fault_open_timeout_s", None,
        ),
    )
}  # fmt: skip
