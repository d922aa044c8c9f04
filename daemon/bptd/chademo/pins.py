"""The charger's sequence signals d1 and d2 (CHAdeMO connector pins 2 and 10).

The charger raises **d1** to wake the vehicle ("charge start") and **d2** once its output is
ready for the vehicle's contactors to close. They are wires, not CAN frames:

- On the station they belong to connector B's safety chipset I/O, which the CANopen device
  profile does not carry yet (docs/chademo.md, "What is missing"): :class:`NoPins` only logs
  what the protocol asks for.
- In simulation there is no wire between the charger and the virtual vehicle (they may even
  run in two processes), so :class:`HarnessPins` carries the two levels on the simulated
  CHAdeMO bus in a frame of its own, :data:`HARNESS_FRAME_ID`, sent with every charger cycle.
  It is not a CHAdeMO frame and is never sent on a SocketCAN bus by default: it stands for
  the cable's copper. The virtual vehicle (:mod:`bptd.sim.chademo_ev`) reads it as its d1 /
  d2 inputs and treats them as low when the frame stops for :data:`HARNESS_TIMEOUT_S` (a
  charger that is gone has dropped its relays).
"""

from __future__ import annotations

from typing import Protocol

import can
import structlog

log = structlog.get_logger(__name__)

#: simulation only: the cable's d1 / d2 levels (byte 0: bit 0 = d1, bit 1 = d2)
HARNESS_FRAME_ID = 0x7F0
HARNESS_TIMEOUT_S = 0.5


class Pins(Protocol):
    def set(self, d1: bool, d2: bool) -> None:
        """Drive d1 / d2 (called every charger cycle with the levels wanted now)."""


class NoPins:
    """No d1 / d2 outputs: log each change of what the protocol asks for."""

    def __init__(self, connector: str = "chademo") -> None:
        self.connector = connector
        self.levels = (False, False)

    def set(self, d1: bool, d2: bool) -> None:
        if (d1, d2) != self.levels:
            self.levels = (d1, d2)
            log.info("chademo_pins", connector=self.connector, d1=d1, d2=d2, wired=False)


class HarnessPins:
    """d1 / d2 as a harness frame on the simulated CHAdeMO bus (see the module text)."""

    def __init__(self, bus: can.BusABC) -> None:
        self.bus = bus
        self.levels = (False, False)

    def set(self, d1: bool, d2: bool) -> None:
        self.levels = (d1, d2)
        frame = can.Message(
            arbitration_id=HARNESS_FRAME_ID,
            data=bytes([int(d1) | int(d2) << 1]),
            is_extended_id=False,
        )
        try:
            self.bus.send(frame)
        except can.CanError as exc:
            log.warning("chademo_harness_send_failed", error=str(exc))


def harness_levels(data: bytes | bytearray) -> tuple[bool, bool]:
    """(d1, d2) from a harness frame's data."""
    b = data[0] if data else 0
    return bool(b & 1), bool(b & 2)
