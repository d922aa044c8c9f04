"""The CHAdeMO frames, from our own DBC (``dbc/chademo.dbc``, shipped in the package).

Both sides use this module: the charger (:mod:`bptd.chademo`) and the virtual vehicle ECU
(:mod:`bptd.sim.chademo_ev`). :func:`decode` turns a received frame into its physical signal
values (``{"TargetBatteryVoltage": 410, ...}``); :func:`encode` builds a frame from signal
values, clamping each one into its signal's range first (a charger must still send a valid
frame when a measurement is out of range, e.g. more than 255 A).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import can
import cantools

from bptd.paths import DBC_DIR

DBC_PATH = DBC_DIR / "chademo.dbc"

# vehicle -> charger
EV_CHARGE_LIMITS = 0x100
EV_CHARGE_TIME = 0x101
EV_STATUS = 0x102
EV_EXTENDED = 0x110
EV_DISCHARGE_LIMITS = 0x200
EV_DISCHARGE_ESTIMATE = 0x201
# charger -> vehicle
EVSE_CAPABILITY = 0x108
EVSE_STATUS = 0x109
EVSE_EXTENDED = 0x118
EVSE_DISCHARGE_CAPABILITY = 0x208
EVSE_DISCHARGE_ESTIMATE = 0x209

VEHICLE_IDS = frozenset(
    {EV_CHARGE_LIMITS, EV_CHARGE_TIME, EV_STATUS, EV_EXTENDED, EV_DISCHARGE_LIMITS,
     EV_DISCHARGE_ESTIMATE}
)  # fmt: skip
CHARGER_IDS = frozenset(
    {EVSE_CAPABILITY, EVSE_STATUS, EVSE_EXTENDED, EVSE_DISCHARGE_CAPABILITY,
     EVSE_DISCHARGE_ESTIMATE}
)  # fmt: skip

#: the cycle of every CHAdeMO frame (each side sends its frames every 100 ms)
PERIOD_S = 0.1

#: 102.4 fault flags -> what they mean (the stop reason a charger reports)
EV_FAULTS = {
    "FaultBatteryOvervoltage": "battery overvoltage",
    "FaultBatteryUndervoltage": "battery undervoltage",
    "FaultBatteryCurrentDeviation": "battery current deviation",
    "FaultHighBatteryTemperature": "high battery temperature",
    "FaultBatteryVoltageDeviation": "battery voltage deviation",
}


@functools.cache
def database() -> cantools.database.can.Database:
    """The CHAdeMO database (loaded once per process)."""
    return cantools.database.load_file(str(DBC_PATH))


@dataclass(frozen=True)
class Received:
    """The last frame of one identifier: its physical signal values and when it arrived."""

    signals: Mapping[str, float]
    at: float

    def get(self, name: str, default: float = 0.0) -> float:
        return float(self.signals.get(name, default))

    def flag(self, name: str) -> bool:
        return bool(self.signals.get(name, 0))


def decode(frame_id: int, data: bytes | bytearray) -> dict[str, float] | None:
    """Physical values of a CHAdeMO frame; None for another identifier or a short frame."""
    db = database()
    try:
        message = db.get_message_by_frame_id(frame_id)
    except KeyError:
        return None
    if len(data) < message.length:
        return None
    values = message.decode(bytes(data[: message.length]), decode_choices=False)
    return {k: float(v) for k, v in values.items()}  # type: ignore[arg-type]


def _clamp(signal: cantools.database.can.Signal, value: float) -> float:
    if not math.isfinite(value):
        value = 0.0
    lo = signal.minimum if signal.minimum is not None else -math.inf
    hi = signal.maximum if signal.maximum is not None else math.inf
    return min(hi, max(lo, float(value)))


def encode(frame_id: int, values: Mapping[str, float | bool]) -> can.Message:
    """A CHAdeMO frame with ``values`` (physical); a missing signal is physical 0 (so an
    ``0xFF - A`` current is 0 A, raw 0xFF); each value clamped to its signal's range."""
    message = database().get_message_by_frame_id(frame_id)
    phys = {s.name: _clamp(s, float(values.get(s.name, 0.0))) for s in message.signals}
    data = message.encode(phys, scaling=True, strict=True)
    return can.Message(arbitration_id=frame_id, data=data, is_extended_id=False)
