"""CAN bus-load accounting: frame lengths, a live meter, and the computed load of a station.

Frame length (classical CAN, bits on the wire including the 3-bit interframe space)::

    CAN 2.0A (11-bit id):  47 + 8 * dlc bits, of which 34 + 8 * dlc are subject to stuffing
        SOF 1, id 11, RTR 1, IDE 1, r0 1, DLC 4, data 8*dlc, CRC 15      = 34 + 8*dlc (stuffed)
        CRC delimiter 1, ACK 2, EOF 7, IFS 3                             = 13
    CAN 2.0B (29-bit id):  67 + 8 * dlc bits, of which 54 + 8 * dlc are subject to stuffing
        SOF 1, id 11, SRR 1, IDE 1, id 18, RTR 1, r1 1, r0 1, DLC 4, data, CRC 15

    worst-case stuff bits = floor((stuffed - 1) / 4)

so an 8-byte standard frame takes 111 bits nominal and 135 bits worst case. Bus load is the
sum over frames of ``bits * rate`` divided by the bitrate.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import can

from bptd.config import Config
from bptd.dbcgen import PdoDef, StationNode, node_od, pdo_defs, station_nodes
from bptd.profile import Profile

Stuffing = Literal["worst", "none"]

DEFAULT_BITRATE = 500_000


def frame_bits(dlc: int, extended: bool = False, stuffing: Stuffing = "worst") -> int:
    """Bits one classical CAN data frame occupies on the bus, interframe space included.

    ``stuffing="worst"`` adds the maximum number of stuff bits, ``"none"`` gives the nominal
    length. See the module docstring for the formula.
    """
    if not 0 <= dlc <= 8:
        raise ValueError(f"classical CAN carries 0..8 data bytes, not {dlc}")
    stuffed = (54 if extended else 34) + 8 * dlc
    nominal = stuffed + 13
    if stuffing == "none":
        return nominal
    if stuffing == "worst":
        return nominal + (stuffed - 1) // 4
    raise ValueError(f"stuffing must be 'worst' or 'none', not {stuffing!r}")


# --------------------------------------------------------------------------- live meter


@dataclass(frozen=True)
class BusLoadReading:
    """What a :class:`BusLoadMeter` saw over its window ending at ``at``."""

    at: float
    window_s: float  # the span the rates are computed over
    frames: int  # frames in the window
    frames_per_s: float
    bits_per_s: float  # worst-case stuffing
    percent: float  # of the bitrate, worst-case stuffing
    percent_nominal: float  # of the bitrate, no stuff bits
    total_frames: int  # since the start or the last reset
    total_bits: int  # worst-case stuffing


class BusLoadMeter:
    """Counts frames and reports rates over a sliding window.

    :meth:`add` is cheap and thread-safe, so it can be fed from a python-can ``Notifier`` or
    from the sending thread. The meter never reads a clock: every timestamp (seconds, any
    monotonic origin) is passed in, which keeps it deterministic under test.

    A frame at time ``t`` counts in the reading at ``now`` when ``now - window_s < t <= now``.
    Rates are divided by ``window_s``, or by ``now - start`` while less than one window has
    passed since ``start`` (when a start time was given).
    """

    def __init__(
        self,
        bitrate: int = DEFAULT_BITRATE,
        window_s: float = 1.0,
        start: float | None = None,
    ) -> None:
        if bitrate <= 0 or window_s <= 0:
            raise ValueError("bitrate and window_s must be > 0")
        self.bitrate = bitrate
        self.window_s = window_s
        self._lock = threading.Lock()
        self._start = start
        self._frames: deque[tuple[float, int, int]] = deque()  # (t, worst bits, nominal bits)
        self._win_bits = 0
        self._win_nominal = 0
        self._total_frames = 0
        self._total_bits = 0
        self._per_id: dict[tuple[int, bool], int] = {}

    def add(self, arbitration_id: int, dlc: int, is_extended: bool, timestamp: float) -> None:
        """Count one frame (timestamps must not go backwards by more than a window)."""
        worst = frame_bits(dlc, is_extended, "worst")
        nominal = frame_bits(dlc, is_extended, "none")
        key = (arbitration_id, is_extended)
        with self._lock:
            self._frames.append((timestamp, worst, nominal))
            self._win_bits += worst
            self._win_nominal += nominal
            self._total_frames += 1
            self._total_bits += worst
            self._per_id[key] = self._per_id.get(key, 0) + 1

    def add_message(self, msg: can.Message) -> None:
        """Count a ``can.Message`` at its own timestamp (error frames are skipped).

        A remote frame carries no data field, so it is counted with DLC 0.
        """
        if msg.is_error_frame:
            return
        dlc = 0 if msg.is_remote_frame else msg.dlc
        self.add(msg.arbitration_id, dlc, msg.is_extended_id, msg.timestamp)

    __call__ = add_message  # usable directly as a python-can Notifier listener

    def _expire(self, now: float) -> None:
        edge = now - self.window_s
        frames = self._frames
        while frames and frames[0][0] <= edge:
            _, worst, nominal = frames.popleft()
            self._win_bits -= worst
            self._win_nominal -= nominal

    def reading(self, now: float) -> BusLoadReading:
        """Rates over the window ending at ``now``; frames later than ``now`` are not counted."""
        with self._lock:
            self._expire(now)
            frames, bits, nominal = len(self._frames), self._win_bits, self._win_nominal
            for t, worst, nom in reversed(self._frames):  # frames after ``now`` (rare)
                if t <= now:
                    break
                frames, bits, nominal = frames - 1, bits - worst, nominal - nom
            total_frames, total_bits = self._total_frames, self._total_bits
            start = self._start
        span = self.window_s
        if start is not None:
            span = min(span, now - start)
        if span <= 0:
            fps = bps = nps = 0.0
        else:
            fps, bps, nps = frames / span, bits / span, nominal / span
        return BusLoadReading(
            at=now,
            window_s=max(span, 0.0),
            frames=frames,
            frames_per_s=fps,
            bits_per_s=bps,
            percent=100.0 * bps / self.bitrate,
            percent_nominal=100.0 * nps / self.bitrate,
            total_frames=total_frames,
            total_bits=total_bits,
        )

    def counts(self) -> dict[tuple[int, bool], int]:
        """Frames counted per (arbitration id, extended) since the start or the last reset."""
        with self._lock:
            return dict(self._per_id)

    def reset(self, start: float | None = None) -> None:
        with self._lock:
            self._start = start
            self._frames.clear()
            self._win_bits = self._win_nominal = 0
            self._total_frames = self._total_bits = 0
            self._per_id.clear()


# --------------------------------------------------------------------------- station estimate


@dataclass(frozen=True)
class LoadItem:
    """One frame type of a station, e.g. the TPDO1 of every DC/DC stage."""

    frame: str  # "dcdc TPDO1", "heartbeat", ...
    producer: str  # device kind or "supervisor"
    count: int  # frames of this type on the bus (one per node)
    dlc: int
    worst_hz: float  # per frame, worst case
    steady_hz: float  # per frame, steady state
    basis: str  # where the rate comes from

    @property
    def bits(self) -> int:
        return frame_bits(self.dlc)

    @property
    def worst_bps(self) -> float:
        return self.count * self.worst_hz * self.bits

    @property
    def steady_bps(self) -> float:
        return self.count * self.steady_hz * self.bits


@dataclass(frozen=True)
class LoadEstimate:
    """The computed bus load of a station (worst-case stuffing throughout)."""

    bitrate: int
    n_modules: int
    n_connectors: int
    items: tuple[LoadItem, ...]

    @property
    def worst_frames_per_s(self) -> float:
        return sum(i.count * i.worst_hz for i in self.items)

    @property
    def steady_frames_per_s(self) -> float:
        return sum(i.count * i.steady_hz for i in self.items)

    @property
    def worst_bps(self) -> float:
        return sum(i.worst_bps for i in self.items)

    @property
    def steady_bps(self) -> float:
        return sum(i.steady_bps for i in self.items)

    @property
    def worst_percent(self) -> float:
        return 100.0 * self.worst_bps / self.bitrate

    @property
    def steady_percent(self) -> float:
        return 100.0 * self.steady_bps / self.bitrate

    def percent_of(self, item: LoadItem, worst: bool = True) -> float:
        return 100.0 * (item.worst_bps if worst else item.steady_bps) / self.bitrate

    def markdown(self) -> str:
        """The breakdown as a Markdown table (used for docs/canopen.md)."""
        head = (
            "| frame | count | DLC | bits | worst Hz | steady Hz | worst % | steady % | basis |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"
        )
        rows = [
            f"| {i.frame} | {i.count} | {i.dlc} | {i.bits} | {i.worst_hz:g} | {i.steady_hz:g} "
            f"| {self.percent_of(i):.2f} | {self.percent_of(i, False):.2f} | {i.basis} |"
            for i in self.items
        ]
        total = (
            f"| **total** | | | | {self.worst_frames_per_s:g} fr/s | "
            f"{self.steady_frames_per_s:g} fr/s | **{self.worst_percent:.1f}** | "
            f"**{self.steady_percent:.1f}** | of {self.bitrate / 1000:g} kbit/s |"
        )
        return "\n".join([head, *rows, total])


def _pdo_item(kind: str, nodes: list[StationNode], pdo: PdoDef, config: Config) -> LoadItem:
    if pdo.direction == "TPDO":
        # device-produced: at the event timer (254 and 255); on-change frames of 255 come on
        # top but are events (state changes), not a continuous rate
        hz = 1000.0 / pdo.event_timer_ms if pdo.event_timer_ms else 0.0
        basis = f"event timer {pdo.event_timer_ms} ms (type {pdo.trans_type})"
        return LoadItem(f"{kind} {pdo.name}", kind, len(nodes), pdo.dlc, hz, hz, basis)
    refresh = 1000.0 / config.can.rpdo_refresh_ms
    inhibit = 1000.0 / config.can.rpdo_inhibit_ms if config.can.rpdo_inhibit_ms > 0 else refresh
    if pdo.event_timer_ms:  # a setpoint PDO: the device supervises it with a deadline
        worst = max(inhibit, refresh)
        basis = (
            f"setpoints (deadline {pdo.event_timer_ms} ms): on change every "
            f"{config.can.rpdo_inhibit_ms} ms worst, refresh {config.can.rpdo_refresh_ms} ms"
        )
    else:
        worst = refresh
        basis = f"refresh {config.can.rpdo_refresh_ms} ms"
    return LoadItem(f"{kind} {pdo.name}", "supervisor", len(nodes), pdo.dlc, worst, refresh, basis)


def estimate_default_load(
    config: Config,
    profile: Profile,
    n_modules: int | None = None,
    bitrate: int = DEFAULT_BITRATE,
) -> LoadEstimate:
    """The computed load of a station at the EDS default PDO timing.

    - device TPDOs at their default event timer;
    - heartbeats at the configured periods (modules, chipsets, ``can.heartbeat_ms``);
    - supervisor RPDOs, steady state: every RPDO at ``1 / can.rpdo_refresh_ms``; worst case:
      RPDOs whose device-side event timer (deadline) is non-zero, i.e. setpoint PDOs, at
      ``1 / can.rpdo_inhibit_ms`` (changing on every allowed slot), the others at the
      refresh rate.

    Sporadic traffic (EMCY, SDO, NMT, boot) is not counted. ``n_modules`` replaces the
    configured modules by modules 1..n at DC/DC 0x3D + n and AFE 0x5D + n.
    """
    nodes = station_nodes(config, n_modules)
    by_kind: dict[str, list[StationNode]] = {}
    for node in nodes:
        by_kind.setdefault(node.kind, []).append(node)
    items: list[LoadItem] = []
    for kind in ("chipset", "dcdc", "afe", "supervisor"):
        kind_nodes = by_kind.get(kind, [])
        if not kind_nodes:
            continue
        # every node of a kind shares its EDS; take the PDO set of the first one
        first = kind_nodes[0]
        pdos = pdo_defs(node_od(profile[kind].eds, first.node_id))
        for pdo in sorted(pdos, key=lambda p: (p.direction != "TPDO", p.number)):
            items.append(_pdo_item(kind, kind_nodes, pdo, config))
    for kind, group in _heartbeat_groups(nodes):
        period = group[0].heartbeat_ms
        hz = 1000.0 / period
        items.append(
            LoadItem(f"{kind} heartbeat", kind, len(group), 1, hz, hz, f"producer {period} ms")
        )
    return LoadEstimate(
        bitrate=bitrate,
        n_modules=len(by_kind.get("dcdc", [])),
        n_connectors=len(by_kind.get("chipset", [])),
        items=tuple(items),
    )


def _heartbeat_groups(nodes: Iterable[StationNode]) -> list[tuple[str, list[StationNode]]]:
    groups: dict[tuple[str, int], list[StationNode]] = {}
    for node in nodes:
        groups.setdefault((node.kind, node.heartbeat_ms), []).append(node)
    return [(kind, group) for (kind, _), group in groups.items()]
