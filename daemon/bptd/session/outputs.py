"""What a session drives each tick: chipset command, module commands, power request."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bptd.session.config import DEAD_VOLTAGE_V
from bptd.session.phases import PHASES
from bptd.session.states import FAULTS, Control, State
from bptd.session.types import (
    CP_MODE_PWM,
    CP_MODE_STEADY,
    FAULT_RESET_BIT,
    MODULE_OFF,
    MODULE_RUNNING,
    OUTPUTS,
    SERIES,
    ChipsetCommand,
    ConnectorInputs,
    ConnectorOutputs,
    HlcReport,
    ModuleCommand,
    PowerCommand,
    module_bits,
)

if TYPE_CHECKING:
    from bptd.session.machine import ConnectorSession


def zero_power() -> PowerCommand:
    return PowerCommand()


def station_max_v(s: ConnectorSession) -> float:
    alloc = s.allocation
    n = alloc.series_count if alloc else 1
    return min(s.connector.max_voltage_v, s.facts.ratings.max_voltage_v * n)


def test_voltage(s: ConnectorSession) -> float:
    """Cable-check test voltage: configured, else min(EV max voltage, station max)."""
    if s.cfg.cable_check_voltage_v is not None:
        return s.cfg.cable_check_voltage_v
    ev_max = s.inputs.ev.max_voltage_v
    return min(ev_max if ev_max > 0 else math.inf, station_max_v(s))


def _transfer(s: ConnectorSession, inp: ConnectorInputs) -> tuple[PowerCommand, bool]:
    """Energy transfer: the signed current wanted inside the EV and station limits."""
    ev, lim = inp.ev, inp.limits
    volts = max(inp.measured_voltage_v or s.hv_voltage_v(inp) or ev.present_voltage_v, 1.0)
    allowed = ev.bpt and s.bidirectional and lim.discharge_current_a < 0
    scheduled = s.control is Control.SCHEDULED
    wanted = ev.target_current_a if scheduled else s.setpoint_w / volts
    charge_cap = min(
        abs(ev.max_charge_current_a), abs(ev.max_charge_power_w) / volts, lim.charge_current_a
    )
    discharge_cap = (
        min(
            abs(ev.max_discharge_current_a),
            abs(ev.max_discharge_power_w) / volts,
            -lim.discharge_current_a,
        )
        if allowed
        else 0.0
    )
    current = max(-discharge_cap, min(charge_cap, wanted))
    alloc = s.allocation
    n = alloc.series_count if alloc else 1
    charge_v = min(ev.max_voltage_v or math.inf, station_max_v(s))
    if s.control is Control.SCHEDULED and ev.target_voltage_v > 0:
        charge_v = min(ev.target_voltage_v, charge_v)
    discharge_v = max(ev.min_voltage_v, s.facts.ratings.min_discharge_voltage_v * n)
    power = PowerCommand(
        requested_current_a=current,
        charge_voltage_v=charge_v,
        discharge_voltage_v=discharge_v,
        phase_current_limit_a=None,
        discharge_allowed=allowed,
        reactive_power_var=s.reactive_power_var,
    )
    return power, abs(current - wanted) > 1e-9


def _power(s: ConnectorSession, inp: ConnectorInputs) -> tuple[PowerCommand, bool]:
    cfg = s.cfg
    if s.state is State.CABLE_CHECK:
        v = s.cable.test_voltage_v
        return PowerCommand(0.0, v, v, cfg.cable_check_current_a), False
    if s.state is State.PRECHARGE:
        v = s.precharge.target_v
        return PowerCommand(0.0, v, v, cfg.precharge_current_a), False
    if s.state is State.ENERGY_TRANSFER:
        return _transfer(s, inp)
    last = s.last_power
    if s.state is State.STOPPING:
        return PowerCommand(0.0, last.charge_voltage_v, last.discharge_voltage_v, None), False
    if s.state is State.FAULT and s.fault is not None:
        policy = FAULTS[s.fault]
        ramping = not s.fault_opened and not policy.safety_stop
        return PowerCommand(
            0.0,
            last.charge_voltage_v,
            last.discharge_voltage_v,
            None if ramping else 0.0,
            safety_stop=policy.safety_stop,
        ), False
    return PowerCommand(), False


def outputs(s: ConnectorSession, now: float, inp: ConnectorInputs) -> ConnectorOutputs:
    phase = PHASES[s.state]
    alloc = s.allocation
    power, limited = _power(s, inp)
    s.last_power = power
    outputs_closed, routing, module_state = phase.outputs, phase.routing, phase.module_state
    if s.state is State.FAULT and s.fault is not None:
        closed = not s.fault_opened
        outputs_closed = closed and bool(s.contactor_cmd & OUTPUTS)
        routing = closed
        ramping = closed and not FAULTS[s.fault].safety_stop
        module_state = MODULE_RUNNING if ramping else MODULE_OFF
    bits = 0
    if alloc is not None and routing:
        bits |= module_bits(alloc.modules)
        if alloc.topology == "series" and len(alloc.modules) > 1:
            bits |= SERIES
        if outputs_closed:
            bits |= OUTPUTS
    hv = s.hv_voltage_v(inp)
    live = hv >= DEAD_VOLTAGE_V or bool(bits & OUTPUTS)
    lock = phase.lock or (live and s.state in (State.FINISHED, State.FAULT))
    if s.state is State.FAULT:
        lock = live
    imd = phase.imd and (s.state is not State.CABLE_CHECK or s.cable.voltage_ok)
    resetting = s.reset_requested and (
        s.reset_started is None or now - s.reset_started < s.cfg.reset_pulse_s
    )
    chipset = ChipsetCommand(
        cp_mode=CP_MODE_PWM if phase.pwm else CP_MODE_STEADY,
        pwm_duty_permille=s.cfg.pwm_duty_permille if phase.pwm else 0,
        contactor_command=bits,
        lock_command=int(lock),
        imd_command=int(imd),
        fault_reset=int(resetting),
    )
    modules: dict[int, ModuleCommand] = {}
    if alloc is not None:
        volts = power.charge_voltage_v
        if power.requested_current_a < 0:
            volts = power.discharge_voltage_v
        per_module = volts / alloc.series_count
        reset_bit = FAULT_RESET_BIT if resetting else 0
        for n in alloc.modules:
            modules[n] = ModuleCommand(
                state_request=module_state | reset_bit,
                voltage_setpoint_v=per_module if module_state == MODULE_RUNNING else 0.0,
                afe_state_request=(phase.afe_state if s.state is not State.FAULT else
                                   module_state) | reset_bit,
            )  # fmt: skip
    stopping = s.state in (State.STOPPING, State.WELDING_DETECTION, State.FINISHED, State.FAULT)
    hlc = HlcReport(
        cable_check_done=s.cable.done and s.state is not State.FAULT,
        isolation="fault" if s.fault is not None and s.fault.value == "insulation_fault"
        else s.cable.isolation,
        precharge_done=s.precharge.done,
        present_voltage_v=hv,
        present_current_a=inp.measured_current_a,
        stop_requested=stopping,
        power_limit_reached=limited,
    )  # fmt: skip
    return ConnectorOutputs(s.state, chipset, modules, power, hlc, (), s.fault)
