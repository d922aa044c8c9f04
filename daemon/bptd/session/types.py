"""Inputs and outputs of one session tick, and the events it returns.

Sign convention: positive current / power = forward (grid to vehicle, charging).
EV limits are magnitudes (a negative number from the EV is read as its magnitude).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# value meanings of the profile objects (one definition: bptd.codes)
from bptd.codes import (  # noqa: F401  (re-exported for the session modules)
    CP_A,
    CP_B,
    CP_C,
    CP_D,
    CP_E,
    CP_F,
    CP_MODE_E,
    CP_MODE_F,
    CP_MODE_PWM,
    CP_MODE_STEADY,
    DC_MINUS,
    DC_PLUS,
    F_CONTACTOR,
    F_CP_LOSS,
    F_ESTOP,
    F_HEARTBEAT,
    F_INSULATION,
    F_OVERVOLTAGE,
    F_ROUTING,
    F_RPDO_TIMEOUT,
    FAULT_RESET_BIT,
    IMD_FAULT,
    IMD_MEASURING,
    IMD_OFF,
    IMD_VALID,
    IMD_WARNING,
    INSULATION_NOT_MEASURED_KOHM,
    MODE_AC_POWER,
    MODE_DC_VOLTAGE,
    MODE_V2L,
    MODULE_FAULT,
    MODULE_OFF,
    MODULE_RUNNING,
    MODULE_SHIFT,
    MODULE_STANDBY,
    OUTPUTS,
    SAFETY_ARMED,
    SAFETY_FAULT,
    SAFETY_INIT,
    SAFETY_SAFE,
    SERIES,
    module_bits,
)
from bptd.session.states import EvPhase, FaultReason, State


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class EvData:
    """The vehicle as the `hlc` API (ISO 15118 / DIN) or CHAdeMO reports it."""

    present: bool = False  # a high-level session with a vehicle exists
    bpt: bool = False  # bidirectional power transfer offered and selected (DC_BPT)
    phase: EvPhase = EvPhase.NONE
    max_voltage_v: float = 0.0
    min_voltage_v: float = 0.0
    max_charge_current_a: float = 0.0
    max_discharge_current_a: float = 0.0
    max_charge_power_w: float = math.inf
    max_discharge_power_w: float = math.inf
    target_voltage_v: float = 0.0  # precharge and scheduled mode
    target_current_a: float = 0.0  # scheduled mode (signed for BPT scheduled)
    present_voltage_v: float = 0.0  # battery voltage as the EV measures it
    soc: float | None = None
    contactors_closed: bool = False  # the EV's own contactors (after PowerDelivery start)
    ready: bool = False  # CP C / D


@dataclass(frozen=True)
class ModuleInputs:
    """One module: its dcdc / afe status by profile name, and supervision flags."""

    online: bool = True  # both nodes operational, heartbeats arriving
    dcdc: Mapping[str, float] = field(default_factory=dict)
    afe: Mapping[str, float] = field(default_factory=dict)
    derating: bool = False  # EMCY over-temperature, derating (data byte 1)
    tripped: bool = False  # EMCY over-temperature, trip (data byte 2)


@dataclass(frozen=True)
class LimitsInput:
    """What the limits engine allows this connector this tick (before the ramp)."""

    charge_current_a: float = math.inf  # >= 0
    discharge_current_a: float = -math.inf  # <= 0
    binding_charge: str = ""
    binding_discharge: str = ""


@dataclass(frozen=True)
class ConnectorInputs:
    chipset: Mapping[str, float] | None = None  # None: chipset node not operational
    modules: Mapping[int, ModuleInputs] = field(default_factory=dict)
    ev: EvData = field(default_factory=EvData)
    limits: LimitsInput = field(default_factory=LimitsInput)
    measured_current_a: float = 0.0  # connector total, signed
    measured_voltage_v: float = 0.0  # connector output (module side)


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class ChipsetCommand:
    cp_mode: int = CP_MODE_STEADY
    pwm_duty_permille: int = 0
    contactor_command: int = 0
    lock_command: int = 0
    imd_command: int = 0
    fault_reset: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "cp_mode": self.cp_mode,
            "pwm_duty_permille": self.pwm_duty_permille,
            "contactor_command": self.contactor_command,
            "lock_command": self.lock_command,
            "imd_command": self.imd_command,
            "fault_reset": self.fault_reset,
        }


@dataclass(frozen=True)
class ModuleCommand:
    """One allocated module. Current limits are the control loop's job (see PowerCommand)."""

    state_request: int = MODULE_OFF  # | FAULT_RESET_BIT during a reset pulse
    power_mode: int = MODE_DC_VOLTAGE
    voltage_setpoint_v: float = 0.0  # per module (series: the connector voltage / n)
    afe_state_request: int = MODULE_OFF
    afe_operating_mode: int = MODE_DC_VOLTAGE


@dataclass(frozen=True)
class PowerCommand:
    """What the session wants from the power path of its connector this tick.

    The control loop clamps ``requested_current_a`` with the limits engine, ramps it
    symmetrically (bypassed when ``safety_stop``), shares it over the modules and sets the
    module voltage to ``charge_voltage_v`` or ``discharge_voltage_v`` by the sign of the
    *ramped* current. While ``phase_current_limit_a`` is not None (cable check, precharge)
    the modules regulate voltage with both current limits at that small value instead.
    """

    requested_current_a: float = 0.0
    charge_voltage_v: float = 0.0
    discharge_voltage_v: float = 0.0
    phase_current_limit_a: float | None = 0.0  # None: no phase cap (energy transfer)
    safety_stop: bool = False
    discharge_allowed: bool = False
    reactive_power_var: float | None = None


@dataclass(frozen=True)
class HlcReport:
    """What the `hlc` frontend answers the vehicle with (EVSEProcessing, IsolationLevel...)."""

    cable_check_done: bool = False
    isolation: str = "invalid"  # invalid | valid | warning | fault
    precharge_done: bool = False
    present_voltage_v: float = 0.0
    present_current_a: float = 0.0
    stop_requested: bool = False  # EVSENotification = StopCharging / Terminate
    power_limit_reached: bool = False


@dataclass(frozen=True)
class StateChanged:
    t: float
    from_state: State
    to_state: State
    reason: str
    source: str


@dataclass(frozen=True)
class FaultRaised:
    t: float
    reason: FaultReason
    text: str
    detail: str = ""


@dataclass(frozen=True)
class CommandEvent:
    t: float
    command: str
    accepted: bool
    detail: str = ""
    code: str = ""  # API error code when refused


@dataclass(frozen=True)
class Notice:
    """Something a technician should see that changes no state (IMD warning, derating...)."""

    t: float
    kind: str
    detail: str


Event = StateChanged | FaultRaised | CommandEvent | Notice


@dataclass(frozen=True)
class ConnectorOutputs:
    """A full snapshot every tick: the bus layer sends it whole, nothing is cached."""

    state: State
    chipset: ChipsetCommand
    modules: Mapping[int, ModuleCommand]
    power: PowerCommand
    hlc: HlcReport
    events: tuple[Event, ...] = ()
    fault: FaultReason | None = None
