"""EMCY consumer: raw frames from 0x80 + node-id -> :class:`EmcyReceived` events.

canopen's ``EmcyConsumer`` needs exactly 8 bytes and drops shorter frames with a one-line
log. The master subscribes its own raw callback instead and decodes here (in the loop
thread): a short frame is decoded with the missing bytes as zero and flagged ``short``.
"""

from __future__ import annotations

import struct

from bptd import emcy
from bptd.fieldbus.events import EmcyReceived

EMCY_BASE = 0x080
#: EMCY frame (CiA 301 7.2.7.3.1): u16 error code, u8 error register (0x1001), 5 bytes data.
EMCY_STRUCT = struct.Struct("<HB5s")

REGISTER_BITS = (
    (emcy.REG_GENERIC, "generic"),
    (emcy.REG_CURRENT, "current"),
    (emcy.REG_VOLTAGE, "voltage"),
    (emcy.REG_TEMPERATURE, "temperature"),
    (emcy.REG_COMMUNICATION, "communication"),
    (emcy.REG_PROFILE, "device profile"),
    (0x40, "reserved"),
    (emcy.REG_MANUFACTURER, "manufacturer"),
)

_OVERTEMP_DATA = {
    emcy.OVERTEMP_DERATING: "derating warning",
    emcy.OVERTEMP_TRIP: "trip",
}


def register_text(register: int) -> str:
    """``0x09`` -> ``generic, temperature``; 0 -> ``none``."""
    names = [name for bit, name in REGISTER_BITS if register & bit]
    return ", ".join(names) if names else "none"


def detail_of(code: int, data: bytes) -> str:
    """What the manufacturer data means, where the bptd profile defines it."""
    if code == emcy.OVER_TEMPERATURE and data:
        return _OVERTEMP_DATA.get(data[0], f"data byte 0 = {data[0]} (unknown)")
    return ""


def decode(key: str, node_id: int, payload: bytes, at: float) -> EmcyReceived:
    """Decode one EMCY frame (any length 0..8)."""
    short = len(payload) < EMCY_STRUCT.size
    code, register, data = EMCY_STRUCT.unpack(bytes(payload[:8]).ljust(EMCY_STRUCT.size, b"\0"))
    if short:
        data = data[: max(0, len(payload) - 3)]
    return EmcyReceived(
        at=at,
        key=key,
        node_id=node_id,
        code=code,
        register=register,
        data=data,
        text=emcy.describe(code),
        detail=detail_of(code, data),
        register_text=register_text(register),
        short=short,
    )
