"""CAN bus specs: ``socketcan:can0``, ``virtual:NAME``, ``udp_multicast:PORT``.

Each interface is one row in :data:`BACKENDS` (name -> builder); nothing else in bptd
branches on the interface name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import can

from bptd.errors import BusSpecError

#: python-can's default IPv6 multicast group for udp_multicast.
UDP_MULTICAST_GROUP = "ff15:7079:7468:6f6e:6465:6d6f:6d63:6173"


@dataclass(frozen=True)
class BusSpec:
    """A parsed CAN spec string."""

    interface: str
    channel: str

    def __str__(self) -> str:
        return f"{self.interface}:{self.channel}"

    def open(self, **kwargs: Any) -> can.BusABC:
        """Open a new python-can bus for this spec."""
        return BACKENDS[self.interface](self.channel, **kwargs)


def _socketcan(channel: str, **kwargs: Any) -> can.BusABC:
    return can.Bus(interface="socketcan", channel=channel, **kwargs)


def _virtual(channel: str, **kwargs: Any) -> can.BusABC:
    return can.Bus(interface="virtual", channel=channel, **kwargs)


def _udp_multicast(channel: str, **kwargs: Any) -> can.BusABC:
    return can.Bus(
        interface="udp_multicast",
        channel=UDP_MULTICAST_GROUP,
        port=int(channel),
        fd=False,
        **kwargs,
    )


def _check_port(channel: str) -> None:
    if not channel.isdigit() or not 1 <= int(channel) <= 65535:
        raise BusSpecError(f"udp_multicast needs a port number 1-65535, got {channel!r}")


BACKENDS: dict[str, Callable[..., can.BusABC]] = {
    "socketcan": _socketcan,
    "virtual": _virtual,
    "udp_multicast": _udp_multicast,
}

_CHECKS: dict[str, Callable[[str], None]] = {"udp_multicast": _check_port}


def parse_bus_spec(text: str) -> BusSpec:
    """Parse ``interface:channel``; raise :class:`BusSpecError` with a clear message."""
    if not isinstance(text, str) or ":" not in text:
        raise BusSpecError(
            f"CAN spec {text!r} is not 'interface:channel' "
            f"(one of {', '.join(f'{k}:...' for k in BACKENDS)})"
        )
    interface, channel = text.split(":", 1)
    if interface not in BACKENDS:
        raise BusSpecError(
            f"unknown CAN interface {interface!r} in {text!r}; use one of {', '.join(BACKENDS)}"
        )
    if not channel:
        raise BusSpecError(f"CAN spec {text!r} has no channel")
    check = _CHECKS.get(interface)
    if check:
        check(channel)
    return BusSpec(interface, channel)
