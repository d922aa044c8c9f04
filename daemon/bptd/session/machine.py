"""ConnectorSession: the charge-session state machine of one connector (pure).

``step(now, inputs)`` advances the machine and returns a full output snapshot; the
command methods (``authorize``, ``allocate``, ...) are what the API layer calls. No
clock, no I/O, no logging: time is an argument and everything observable is returned.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bptd.api.protocol import ErrorCode
from bptd.session import checks
from bptd.session import outputs as outs
from bptd.session.config import SessionConfig, StationFacts
from bptd.session.errors import SessionError, TransitionNotAllowed
from bptd.session.ownership import Allocation, ModuleOwnership
from bptd.session.phases import PHASES
from bptd.session.states import (
    ENERGIZED,
    FAULTS,
    HOLDS_MODULES,
    TRANSITIONS,
    Control,
    FaultReason,
    State,
    SupCode,
    Trigger,
)
from bptd.session.types import (
    CP_A,
    ConnectorInputs,
    ConnectorOutputs,
    Event,
    FaultRaised,
    Notice,
    StateChanged,
)

F = TypeVar("F", bound=Callable[..., Any])


def _command(fn: F) -> F:
    """Record every command as an accepted / refused event (the reply is the return)."""

    @functools.wraps(fn)
    def wrapper(self: ConnectorSession, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(self, *args, **kwargs)
        except SessionError as exc:
            self.events.append(checks.refused(self.now, fn.__name__, exc))
            raise
        self.events.append(checks.accepted(self.now, fn.__name__, result))
        return result

    return wrapper  # type: ignore[return-value]


@dataclass
class CableCheck:
    test_voltage_v: float = 0.0
    voltage_ok: bool = False
    done: bool = False
    done_at: float = 0.0
    isolation: str = "invalid"


@dataclass
class Precharge:
    wanted_v: float = 0.0  # what the EV asks for
    target_v: float = 0.0  # what the modules are told: inside the EV and station maximum
    done: bool = False
    done_at: float = 0.0


class ConnectorSession:
    def __init__(
        self,
        name: str,
        config: SessionConfig,
        facts: StationFacts,
        ownership: ModuleOwnership | None = None,
    ) -> None:
        if name not in facts.connectors:
            raise KeyError(name)
        self.name = name
        self.cfg = config
        self.facts = facts
        self.connector = facts.connectors[name]
        self.ownership = ownership if ownership is not None else ModuleOwnership(facts)
        self.state = State.IDLE
        self.now = 0.0
        self.entered_at = 0.0
        self.events: list[Event] = []
        self.inputs = ConnectorInputs()
        self.keep_authorization = True
        self.bidirectional = False
        self.control = Control.DYNAMIC
        self.setpoint_w = 0.0
        self.reactive_power_var: float | None = None
        self.start_requested = False
        self.cable = CableCheck()
        self.precharge = Precharge()
        self.violation_since: float | None = None
        self.fault: FaultReason | None = None
        self.fault_detail = ""
        self.fault_opened = False
        self.reset_requested = False
        self.reset_started: float | None = None
        self.derating_noticed: set[int] = set()
        self.contactor_cmd = 0
        self.contactor_cmd_since = 0.0
        self.last_power = outs.zero_power()

    # ------------------------------------------------------------------ queries
    @property
    def allocation(self) -> Allocation | None:
        return self.ownership.allocations.get(self.name)

    def elapsed(self, now: float) -> float:
        return now - self.entered_at

    def hv_voltage_v(self, inp: ConnectorInputs) -> float:
        if inp.chipset is not None and "hv_voltage_v" in inp.chipset:
            return float(inp.chipset["hv_voltage_v"])
        return inp.measured_voltage_v

    def module_gone(self, inp: ConnectorInputs) -> bool:
        """An allocated module is off the bus (it carries no current any more)."""
        alloc = self.allocation
        return alloc is not None and any(
            (m := inp.modules.get(n)) is None or not m.online for n in alloc.modules
        )

    def station_max_voltage_v(self, inp: ConnectorInputs) -> float:
        """The highest output voltage allowed now: EV maximum and station maximum."""
        return min(inp.ev.max_voltage_v or math.inf, outs.station_max_v(self))

    def ev_limit_problem(self, inp: ConnectorInputs) -> str | None:
        return checks.ev_limit_problem(self.cfg, inp)

    # ------------------------------------------------------------------ tick
    def step(self, now: float, inputs: ConnectorInputs) -> ConnectorOutputs:
        self.now = now
        self.inputs = inputs
        found = None
        if self.state is not State.FAULT:
            found = checks.find_fault(self, now, inputs)
            if found is not None:
                self.fail(*found)
        if self.state is not State.FAULT or found is None:
            PHASES[self.state].step(self, now, inputs)
        out = outs.outputs(self, now, inputs)
        if out.chipset.contactor_command != self.contactor_cmd:
            self.contactor_cmd = out.chipset.contactor_command
            self.contactor_cmd_since = now
        events, self.events = tuple(self.events), []
        return ConnectorOutputs(
            state=out.state,
            chipset=out.chipset,
            modules=out.modules,
            power=out.power,
            hlc=out.hlc,
            events=events,
            fault=self.fault,
        )

    # ------------------------------------------------------------------ transitions
    def transition(self, trigger: Trigger, reason: str) -> None:
        row = TRANSITIONS.get((self.state, trigger))
        if row is None:
            raise TransitionNotAllowed(self.state, trigger)
        to, source = row
        self.events.append(StateChanged(self.now, self.state, to, reason, source))
        self.state = to
        self.entered_at = self.now
        if to is State.CABLE_CHECK:
            self.cable = CableCheck(test_voltage_v=outs.test_voltage(self))
        elif to is State.PRECHARGE:
            self.precharge = Precharge()
        elif to is State.ENERGY_TRANSFER:
            self.violation_since = None
        if to not in HOLDS_MODULES and to is not State.FAULT:
            self.ownership.release(self.name)
            self.start_requested = False
        if to in (State.IDLE, State.CONNECTED):
            self.keep_authorization = True
            self.derating_noticed.clear()

    def fail(self, reason: FaultReason, detail: str = "") -> None:
        """The single failure path: any state -> fault, with a reason and its text."""
        if self.state is State.FAULT:
            self.notice("further_fault", f"{reason.value}: {detail}")
            return
        policy = FAULTS[reason]
        current = abs(self.inputs.measured_current_a)
        self.events.append(FaultRaised(self.now, reason, policy.text, detail))
        was_energized = self.state in ENERGIZED
        self.transition(Trigger.FAULT, f"{reason.value}: {detail}" if detail else reason.value)
        self.fault, self.fault_detail = reason, detail
        self.fault_opened = False
        self.reset_requested, self.reset_started = False, None
        gone = self.module_gone(self.inputs)  # an offline module cannot be ramped down
        if gone or policy.open_at_once or not was_energized or current < self.cfg.stop_current_a:
            self.open_fault_contactors(current)

    def open_fault_contactors(self, current: float) -> None:
        if self.fault_opened:
            return
        self.fault_opened = True
        if current >= self.cfg.stop_current_a:
            self.notice(
                "opened_under_load",
                f"contactors opened at {current:.1f} A ({self.fault.value if self.fault else ''})",
            )

    def fault_step(self, now: float, inp: ConnectorInputs) -> None:
        checks.fault_step(self, now, inp)

    def notice(self, kind: str, detail: str) -> None:
        self.events.append(Notice(self.now, kind, detail))

    # ------------------------------------------------------------------ commands
    def _refuse(self, code: ErrorCode, message: str) -> SessionError:
        return SessionError(code, f"{self.name}: {message}")

    def _wrong_state(self, what: str) -> SessionError:
        return self._refuse(ErrorCode.WRONG_STATE, f"cannot {what} in state {self.state.value}")

    @_command
    def authorize(self) -> dict[str, Any]:
        if self.state is not State.CONNECTED:
            raise self._wrong_state("authorize")
        self.transition(Trigger.AUTHORIZE, "authorized")
        return {"state": self.state.value}

    @_command
    def allocate(self, modules: Any, topology: Any = "parallel") -> dict[str, Any]:
        if self.state not in (State.AUTHORIZED, State.ALLOCATED):
            raise self._wrong_state("allocate")
        alloc = self.ownership.validate(self.name, modules, topology)
        checks.require_dead(self, alloc)
        self.ownership.claim(alloc)
        self.transition(
            Trigger.ALLOCATE,
            f"modules {list(alloc.modules)} {alloc.topology}, configuration {alloc.configuration}",
        )
        return {
            "modules": list(alloc.modules),
            "topology": alloc.topology,
            "configuration": alloc.configuration,
            "configuration_name": alloc.configuration_name,
        }

    @_command
    def set_mode(self, bidirectional: Any, control: Any = "dynamic") -> dict[str, Any]:
        if not isinstance(bidirectional, bool):
            raise self._refuse(ErrorCode.INVALID_ARGUMENT, "bidirectional must be true or false")
        if control not in Control._value2member_map_:
            raise self._refuse(ErrorCode.INVALID_ARGUMENT, "control must be dynamic or scheduled")
        self.bidirectional, self.control = bidirectional, Control(control)
        if not bidirectional and self.setpoint_w < 0:
            self.setpoint_w = 0.0
        return {"bidirectional": bidirectional, "control": self.control.value}

    @_command
    def setpoint(self, power_w: Any, reactive_power_var: Any = None) -> dict[str, Any]:
        return checks.setpoint(self, power_w, reactive_power_var)

    @_command
    def start(self) -> dict[str, Any]:
        if self.state is not State.ALLOCATED:
            raise self._wrong_state("start (allocate first)")
        self.start_requested = True
        return {"state": self.state.value, "waiting_for": "vehicle cable check request"}

    @_command
    def stop(self) -> dict[str, Any]:
        if self.state in (State.STOPPING, State.WELDING_DETECTION, State.FINISHED):
            return {"state": self.state.value}
        if self.state in (State.IDLE, State.CONNECTED, State.FAULT):
            raise self._wrong_state("stop")
        self.transition(Trigger.STOP, "stop requested")
        return {"state": self.state.value}

    @_command
    def terminate(self) -> dict[str, Any]:
        """Stop and forget the authorization: a re-arm then needs a new approbation."""
        if self.state in (State.IDLE, State.FAULT):
            raise self._wrong_state("terminate")
        self.keep_authorization = False
        if self.state in (State.AUTHORIZED, State.ALLOCATED):
            self.transition(Trigger.CANCEL, "terminated")
        elif self.state in ENERGIZED and self.state is not State.STOPPING:
            self.transition(Trigger.STOP, "terminated")
        return {"state": self.state.value}

    @_command
    def cancel(self) -> dict[str, Any]:
        if self.state in (State.AUTHORIZED, State.ALLOCATED):
            self.transition(Trigger.CANCEL, "authorization cancelled")
            return {"state": self.state.value}
        if self.state in ENERGIZED:
            self.keep_authorization = False
            if self.state is not State.STOPPING:
                self.transition(Trigger.STOP, "authorization cancelled")
            return {"state": self.state.value}
        raise self._wrong_state("cancel")

    @_command
    def rearm(self) -> dict[str, Any]:
        if self.state is not State.FINISHED:
            raise self._wrong_state("re-arm")
        if self.inputs.chipset is None or int(self.inputs.chipset.get("cp_state", 0)) == CP_A:
            raise self._refuse(ErrorCode.NOT_ALLOWED, "no vehicle plugged")
        if self.keep_authorization:
            self.transition(Trigger.REARM, "re-armed without unplug")
        else:
            self.transition(Trigger.REARM_NEW, "re-armed after terminate: authorize again")
        return {"state": self.state.value}

    @_command
    def reset(self) -> dict[str, Any]:
        if self.state is not State.FAULT or self.fault is None:
            raise self._wrong_state("reset")
        if not self.fault_opened:
            raise self._refuse(ErrorCode.WRONG_STATE, "still shutting down; retry shortly")
        cause = checks.cause_persists(self, self.fault, self.inputs)
        if cause is not None:
            raise self._refuse(ErrorCode.NOT_ALLOWED, f"{self.fault.value} persists: {cause}")
        self.reset_requested, self.reset_started = True, None
        return {"state": self.state.value, "resetting": True}

    @_command
    def supervisor_request(
        self,
        code: Any,
        *,
        bidirectional: bool | None = None,
        control: str | None = None,
    ) -> dict[str, Any]:
        """Vendor request codes SUP0..SUP7 mapped onto the commands (docs/session.md)."""
        if isinstance(code, bool) or code not in SupCode._value2member_map_:
            raise self._refuse(ErrorCode.INVALID_ARGUMENT, "code must be 0..7 (SUP0..SUP7)")
        sup = SupCode(code)
        if sup is SupCode.SUP0_IDLE:
            return {"state": self.state.value}
        if sup is SupCode.SUP1_APPROBATION:
            return self.authorize()
        if sup is SupCode.SUP2_CANCELLATION:
            return self.cancel()
        if sup is SupCode.SUP3_ALLOCATIONDONE:
            if bidirectional is not None:
                self.set_mode(bidirectional, control or self.control.value)
            if self.state is State.AUTHORIZED:
                self.allocate(*self.ownership.sup3_request(self.name))
            result = self.start()
            return {**result, "modules": list(self.allocation.modules if self.allocation else ())}
        if sup is SupCode.SUP4_STOPCHARGE:
            return self.stop()
        if sup is SupCode.SUP5_TERMINATE:
            return self.terminate()
        if sup is SupCode.SUP6_RESET:
            return self.reset()
        return self.rearm()

    def status(self) -> dict[str, Any]:
        alloc = self.allocation
        return {
            "state": self.state.value,
            "fault": None if self.fault is None else self.fault.value,
            "fault_detail": self.fault_detail,
            "allocation": None
            if alloc is None
            else {"modules": list(alloc.modules), "topology": alloc.topology,
                  "configuration": alloc.configuration},
            "bidirectional": self.bidirectional,
            "control": self.control.value,
            "setpoint_w": self.setpoint_w,
            "requested_current_a": self.last_power.requested_current_a,
            "since": self.entered_at,
        }  # fmt: skip
