"""The charge-session core: one pure state machine per connector (docs/session.md)."""

from bptd.session.config import DEAD_VOLTAGE_V, SessionConfig, StationFacts
from bptd.session.errors import SessionError, TransitionNotAllowed
from bptd.session.machine import ConnectorSession
from bptd.session.ownership import Allocation, ModuleOwnership
from bptd.session.states import FAULTS, Control, EvPhase, FaultReason, State, SupCode
from bptd.session.station import Station
from bptd.session.types import (
    ChipsetCommand,
    CommandEvent,
    ConnectorInputs,
    ConnectorOutputs,
    EvData,
    FaultRaised,
    HlcReport,
    LimitsInput,
    ModuleCommand,
    ModuleInputs,
    Notice,
    PowerCommand,
    StateChanged,
)

__all__ = [
    "DEAD_VOLTAGE_V",
    "FAULTS",
    "Allocation",
    "ChipsetCommand",
    "CommandEvent",
    "ConnectorInputs",
    "ConnectorOutputs",
    "ConnectorSession",
    "Control",
    "EvData",
    "EvPhase",
    "FaultRaised",
    "FaultReason",
    "HlcReport",
    "LimitsInput",
    "ModuleCommand",
    "ModuleInputs",
    "ModuleOwnership",
    "Notice",
    "PowerCommand",
    "SessionConfig",
    "SessionError",
    "State",
    "StateChanged",
    "Station",
    "StationFacts",
    "SupCode",
    "TransitionNotAllowed",
]
