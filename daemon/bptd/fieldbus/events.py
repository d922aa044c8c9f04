"""Events ``Fieldbus.poll()`` returns to the control loop (typed, immutable).

Every event carries ``at``: the monotonic ``now`` of the ``poll()`` that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bptd.fieldbus.nodes import Identity, NodeState


@dataclass(frozen=True)
class FieldbusEvent:
    """Base class of everything ``poll()`` returns."""

    at: float


@dataclass(frozen=True)
class NodeStateChanged(FieldbusEvent):
    """A node changed state; ``reason`` says why in plain words."""

    key: str
    node_id: int
    old: NodeState
    new: NodeState
    reason: str
    identity: Identity | None = None


@dataclass(frozen=True)
class EmcyReceived(FieldbusEvent):
    """An EMCY frame from a device, decoded (CiA 301 classes plus the bptd profile codes).

    ``text`` is :func:`bptd.emcy.describe` of the code; ``detail`` adds what the data means
    where the profile defines it (over-temperature: derating warning / trip). ``short`` is
    True when the frame had fewer than 8 bytes (decoded anyway, missing bytes as zero).
    """

    key: str
    node_id: int
    code: int
    register: int
    data: bytes
    text: str
    detail: str
    register_text: str
    short: bool = False

    @property
    def is_reset(self) -> bool:
        return self.code == 0

    def __str__(self) -> str:
        extra = f", {self.detail}" if self.detail else ""
        return (
            f"{self.key} EMCY 0x{self.code:04X} {self.text}{extra} "
            f"(register 0x{self.register:02X} {self.register_text}, data {self.data.hex()})"
        )


@dataclass(frozen=True)
class BusFault(FieldbusEvent):
    """The bus failed; every node is lost and the bus is being reopened."""

    reason: str


@dataclass(frozen=True)
class BusWarning(FieldbusEvent):
    """An error frame that is not bus-off (error passive, protocol error, ...)."""

    reason: str
    error_id: int


@dataclass(frozen=True)
class BusRecovered(FieldbusEvent):
    """The bus was reopened after a fault; the nodes boot again as they are seen."""

    downtime_s: float
    attempts: int
