"""States, triggers, fault reasons and the one transition table of a connector session.

Every row of :data:`TRANSITIONS` cites where the step comes from: the product spec
(SPEC "Charge session"), IEC 61851-1 Annex A (control pilot), IEC 61851-23 (DC EVSE),
ISO 15118-2 / -20 message sequence (HARDWARE.md "CCS DC sequence") or a bptd rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    IDLE = "idle"
    CONNECTED = "connected"
    AUTHORIZED = "authorized"
    ALLOCATED = "allocated"
    CABLE_CHECK = "cable_check"
    PRECHARGE = "precharge"
    ENERGY_TRANSFER = "energy_transfer"
    STOPPING = "stopping"
    WELDING_DETECTION = "welding_detection"
    FINISHED = "finished"
    FAULT = "fault"


#: states in which the output contactors may be closed and the output may be live
ENERGIZED = frozenset({State.CABLE_CHECK, State.PRECHARGE, State.ENERGY_TRANSFER, State.STOPPING})
#: states that own modules (routing contactors closed for this connector)
HOLDS_MODULES = ENERGIZED | {State.ALLOCATED, State.WELDING_DETECTION}


class Trigger(enum.StrEnum):
    PLUG = "plug"  # CP A -> B/C/D
    UNPLUG = "unplug"  # CP back to A with the output dead
    AUTHORIZE = "authorize"
    ALLOCATE = "allocate"
    CANCEL = "cancel"  # authorization withdrawn before energy transfer
    CABLE_CHECK_REQUESTED = "cable_check_requested"  # started and the EV asks for it
    CABLE_CHECK_PASSED = "cable_check_passed"  # IMD valid / warning and the EV moves on
    POWER_DELIVERY = "power_delivery"  # precharge matched and the EV closed its contactors
    STOP = "stop"
    CURRENT_ZERO = "current_zero"  # |I| below the stop threshold: contactors may open
    WELDING_PASSED = "welding_passed"
    REARM = "rearm"  # SUP7: a new session without unplugging, authorization kept
    REARM_NEW = "rearm_new"  # SUP7 after SUP5 terminate: a new authorization is needed
    FAULT = "fault"
    RESET = "reset"  # reset accepted and the latches cleared, vehicle plugged
    RESET_UNPLUGGED = "reset_unplugged"  # the same with no vehicle (CP A)


class EvPhase(enum.StrEnum):
    """Where the EV is in its ISO 15118 / DIN 70121 sequence (CHAdeMO is mapped onto it)."""

    NONE = "none"
    SESSION_SETUP = "session_setup"
    AUTHORIZATION = "authorization"
    PARAMETER_DISCOVERY = "parameter_discovery"
    CABLE_CHECK = "cable_check"
    PRECHARGE = "precharge"
    POWER_DELIVERY_START = "power_delivery_start"
    CHARGE_LOOP = "charge_loop"
    POWER_DELIVERY_STOP = "power_delivery_stop"
    WELDING_DETECTION = "welding_detection"
    SESSION_STOP = "session_stop"


#: EV phases that mean "the EV wants the energy transfer to end"
EV_STOPPING = frozenset(
    {EvPhase.POWER_DELIVERY_STOP, EvPhase.WELDING_DETECTION, EvPhase.SESSION_STOP}
)


class Control(enum.StrEnum):
    DYNAMIC = "dynamic"  # the station (API setpoint) decides inside the EV limits (-20 Dynamic)
    SCHEDULED = "scheduled"  # follow the EV's target voltage / current (-2, DIN, -20 Scheduled)


class FaultReason(enum.StrEnum):
    INSULATION_FAULT = "insulation_fault"
    IMD_TIMEOUT = "imd_timeout"
    PRECHARGE_TIMEOUT = "precharge_timeout"
    EV_TIMEOUT = "ev_timeout"
    CP_LOST = "cp_lost"
    EV_UNPLUGGED = "ev_unplugged"
    ESTOP = "estop"
    CHIPSET_LOST = "chipset_lost"
    CHIPSET_FAULT = "chipset_fault"
    MODULE_LOST = "module_lost"
    MODULE_FAULT = "module_fault"
    MODULE_OVERTEMP = "module_overtemp"
    CONTACTOR_MISMATCH = "contactor_mismatch"
    EV_LIMITS_VIOLATED = "ev_limits_violated"
    STOP_TIMEOUT = "stop_timeout"
    WELDING_DETECTED = "welding_detected"


@dataclass(frozen=True)
class FaultPolicy:
    """How a fault shuts the connector down.

    ``safety_stop``: bypass the current ramp and switch the modules off at once.
    ``open_at_once``: open the contactors at once, even under load (the event says so);
    otherwise they open once |I| is below the stop threshold (or after the fault open
    timeout, again with an "opened under load" event).
    """

    text: str
    safety_stop: bool
    open_at_once: bool


FAULTS: dict[FaultReason, FaultPolicy] = {
    FaultReason.INSULATION_FAULT: FaultPolicy(
        "insulation fault: the IMD measured too low a resistance between DC and earth; "
        "check the cable, the inlet and the vehicle",
        True,
        True,
    ),
    FaultReason.IMD_TIMEOUT: FaultPolicy(
        "cable check did not complete: the test voltage was not reached or the IMD gave "
        "no result in time",
        False,
        False,
    ),
    FaultReason.PRECHARGE_TIMEOUT: FaultPolicy(
        "precharge timeout: the output did not reach the battery voltage in time",
        False,
        False,
    ),
    FaultReason.EV_TIMEOUT: FaultPolicy(
        "the vehicle did not continue the charging sequence in time", False, False
    ),
    FaultReason.CP_LOST: FaultPolicy(
        "control pilot lost or in error (state E/F or no valid level) while a session ran",
        True,
        True,
    ),
    FaultReason.EV_UNPLUGGED: FaultPolicy(
        "the vehicle was unplugged (control pilot A) while the output was energized",
        True,
        True,
    ),
    FaultReason.ESTOP: FaultPolicy("emergency stop pressed", True, True),
    FaultReason.CHIPSET_LOST: FaultPolicy(
        "the connector's safety chipset stopped answering (CANopen node not operational)",
        True,
        True,
    ),
    FaultReason.CHIPSET_FAULT: FaultPolicy(
        "the safety chipset latched a fault (see its fault word)", True, True
    ),
    FaultReason.MODULE_LOST: FaultPolicy(
        "an allocated power module went offline or tripped", True, False
    ),
    FaultReason.MODULE_FAULT: FaultPolicy(
        "an allocated power module reports a fault (see its fault word)", True, False
    ),
    FaultReason.MODULE_OVERTEMP: FaultPolicy(
        "an allocated power module tripped on over-temperature", False, False
    ),
    FaultReason.CONTACTOR_MISMATCH: FaultPolicy(
        "contactor feedback does not match the command (auxiliary contact or coil fault)",
        True,
        True,
    ),
    FaultReason.EV_LIMITS_VIOLATED: FaultPolicy(
        "output voltage or current beyond the limits the vehicle announced", True, False
    ),
    FaultReason.STOP_TIMEOUT: FaultPolicy(
        "the current did not fall below the stop threshold in time; contactors opened",
        True,
        True,
    ),
    FaultReason.WELDING_DETECTED: FaultPolicy(
        "welding detected: a contactor stayed closed or the output stayed live after opening",
        True,
        True,
    ),
}


class SupCode(enum.IntEnum):
    """Vendor supervisor request codes (HARDWARE.md "Vendor supervisor interface")."""

    SUP0_IDLE = 0
    SUP1_APPROBATION = 1
    SUP2_CANCELLATION = 2
    SUP3_ALLOCATIONDONE = 3
    SUP4_STOPCHARGE = 4
    SUP5_TERMINATE = 5
    SUP6_RESET = 6
    SUP7_REARMWITHOUTUNPLUG = 7


_SPEC = "SPEC Charge session"
_CP = "IEC 61851-1 Annex A"
_SEQ = "ISO 15118-2/-20 DC sequence (HARDWARE.md)"

#: (from, trigger) -> (to, source). FAULT rows for every state are added below.
TRANSITIONS: dict[tuple[State, Trigger], tuple[State, str]] = {
    (State.IDLE, Trigger.PLUG): (State.CONNECTED, f"{_CP}: CP A -> B, vehicle connected"),
    (State.CONNECTED, Trigger.AUTHORIZE): (State.AUTHORIZED, f"{_SEQ} Authorization; SUP1"),
    (State.CONNECTED, Trigger.UNPLUG): (State.IDLE, f"{_CP}: CP -> A"),
    (State.AUTHORIZED, Trigger.ALLOCATE): (State.ALLOCATED, f"{_SPEC}: allocation; SUP3"),
    (State.AUTHORIZED, Trigger.CANCEL): (State.CONNECTED, "SUP2 cancellation"),
    (State.AUTHORIZED, Trigger.STOP): (State.FINISHED, f"{_SPEC}: stop before energizing"),
    (State.AUTHORIZED, Trigger.UNPLUG): (State.IDLE, f"{_CP}: CP -> A"),
    (State.ALLOCATED, Trigger.ALLOCATE): (State.ALLOCATED, "bptd: re-allocation, output dead"),
    (State.ALLOCATED, Trigger.CABLE_CHECK_REQUESTED): (
        State.CABLE_CHECK,
        f"{_SEQ} CableCheckReq with CP C/D; IEC 61851-23 6.4.3.106 (contactors closed)",
    ),
    (State.ALLOCATED, Trigger.CANCEL): (State.CONNECTED, "SUP2 cancellation"),
    (State.ALLOCATED, Trigger.STOP): (State.FINISHED, f"{_SPEC}: stop before energizing"),
    (State.ALLOCATED, Trigger.UNPLUG): (State.IDLE, f"{_CP}: CP -> A"),
    (State.CABLE_CHECK, Trigger.CABLE_CHECK_PASSED): (
        State.PRECHARGE,
        f"{_SEQ} CableCheckRes Finished (IsolationLevel Valid/Warning), PreChargeReq",
    ),
    (State.CABLE_CHECK, Trigger.STOP): (State.STOPPING, f"{_SPEC}: stop, ramp to 0 A"),
    (State.PRECHARGE, Trigger.POWER_DELIVERY): (
        State.ENERGY_TRANSFER,
        f"{_SEQ} PowerDeliveryReq(Start): EV contactors closed",
    ),
    (State.PRECHARGE, Trigger.STOP): (State.STOPPING, f"{_SPEC}: stop, ramp to 0 A"),
    (State.ENERGY_TRANSFER, Trigger.STOP): (
        State.STOPPING,
        f"{_SEQ} PowerDeliveryReq(Stop) / CP C -> B / stop command: ramp to 0 A",
    ),
    (State.STOPPING, Trigger.CURRENT_ZERO): (
        State.WELDING_DETECTION,
        f"{_SPEC}: open below the current threshold; {_SEQ} WeldingDetection",
    ),
    (State.WELDING_DETECTION, Trigger.WELDING_PASSED): (
        State.FINISHED,
        f"{_SEQ} SessionStop; {_CP}: CP B",
    ),
    (State.FINISHED, Trigger.UNPLUG): (State.IDLE, f"{_CP}: CP -> A"),
    (State.FINISHED, Trigger.REARM): (State.AUTHORIZED, "SUP7 re-arm without unplug"),
    (State.FINISHED, Trigger.REARM_NEW): (State.CONNECTED, "SUP7 after SUP5 terminate"),
    (State.FAULT, Trigger.RESET): (State.CONNECTED, f"{_SPEC}: reset once the cause is gone"),
    (State.FAULT, Trigger.RESET_UNPLUGGED): (State.IDLE, f"{_SPEC}: reset, no vehicle"),
}
for _state in State:
    if _state is not State.FAULT:
        TRANSITIONS[(_state, Trigger.FAULT)] = (State.FAULT, f"{_SPEC}: any state -> fault")
