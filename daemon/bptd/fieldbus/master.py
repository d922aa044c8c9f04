"""The CANopen master as the control loop sees it: :class:`Fieldbus`.

One control-loop thread calls :meth:`Fieldbus.poll` every tick and owns all node state;
the notifier thread only enqueues (:mod:`bptd.fieldbus.link`), boots run in a small worker
pool (:mod:`bptd.fieldbus.boot`), and tearing down / reopening the bus runs in one more
worker, so ``poll()`` and ``flush()`` never block on the bus.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import can
import structlog

from bptd.busload import BusLoadMeter, BusLoadReading
from bptd.canbus import BusSpec, parse_bus_spec
from bptd.config import Config
from bptd.fieldbus import emcy as emcy_decode
from bptd.fieldbus import supervision
from bptd.fieldbus.boot import BootParams
from bptd.fieldbus.errors import NodeUnavailableError
from bptd.fieldbus.events import (
    BusFault,
    BusRecovered,
    BusWarning,
    FieldbusEvent,
)
from bptd.fieldbus.lifecycle import NodeLifecycle
from bptd.fieldbus.link import Link
from bptd.fieldbus.nodes import (
    BACKOFF_MAX_S,
    NMT_STATE_NAMES,
    NodeModel,
    NodeState,
    NodeStatus,
    node_specs,
    status_of,
)
from bptd.fieldbus.pdo import NodePdos, StatusValues
from bptd.profile import Profile, load_profile

log = structlog.get_logger(__name__)

BusSource = str | BusSpec | can.BusABC | Callable[[], can.BusABC]
BOOT_WORKERS = 4


def _nmt_name(state: int) -> str:
    return NMT_STATE_NAMES.get(state, f"0x{state:02X}")


class Fieldbus(NodeLifecycle):
    """CANopen master of one station: boot, supervision, EMCY, PDO I/O, SDO, recovery.

    ``bus`` is a spec string / :class:`BusSpec` (opened, and reopened after a fault, by the
    master), a factory returning a new bus, or a ready ``can.BusABC`` (reused as is after a
    fault and never shut down by the master). Default: ``config.can.bus``.
    """

    def __init__(
        self, config: Config, profile: Profile | None = None, bus: BusSource | None = None
    ) -> None:
        self.config = config
        self.profile = profile or load_profile(config.station.profile or None)
        source = config.can.bus if bus is None else bus
        self._source = parse_bus_spec(source) if isinstance(source, str) else source
        self._nodes: dict[str, NodeModel] = {
            s.key: NodeModel(s) for s in node_specs(config, self.profile)
        }
        self._pdos = {key: NodePdos.build(n.spec) for key, n in self._nodes.items()}
        self._locks = {key: threading.Lock() for key in self._nodes}
        self._tpdo_cobs = {key: list(p.tpdos) for key, p in self._pdos.items()}
        self.meter = BusLoadMeter(window_s=1.0, start=time.monotonic())
        c = config.can
        self._boot_params = BootParams(
            c.supervisor_node_id, c.heartbeat_ms, c.consumer_factor, c.boot_timeout_s
        )
        self._inhibit_s = c.rpdo_inhibit_ms / 1000.0
        self._refresh_s = c.rpdo_refresh_ms / 1000.0
        self._link: Link | None = None
        self._pending: list[FieldbusEvent] = []
        self._boot_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._bus_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._reopen: concurrent.futures.Future[Link] | None = None
        self._bus_backoff_s = 0.0
        self._bus_down_since: float | None = None
        self._reopen_attempts = 0
        self._send_failures = 0
        #: changed RPDOs the last :meth:`flush` held back by their inhibit time
        self.rpdos_held = 0
        self._closing = threading.Event()
        self._started = self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Fieldbus:
        """Open the bus and start the supervisor heartbeat; a bus that cannot be opened is a
        bus fault (reported by the next ``poll()``, retried with backoff), never an exception."""
        if self._started:
            return self
        self._started = True
        n = len(self._nodes)
        self._boot_pool = concurrent.futures.ThreadPoolExecutor(
            min(BOOT_WORKERS, max(1, n)), thread_name_prefix="bptd-boot"
        )
        self._bus_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bptd-bus")
        now = time.monotonic()
        try:
            self._link = self._open_link()
            log.info("fieldbus_started", bus=str(self._source), nodes=n)
        except Exception as exc:
            self._pending.append(self._bus_fault(now, f"cannot open the bus: {exc}", None)[0])
        return self

    def close(self) -> None:
        """Stop the heartbeat first (devices go safe), then boots, notifier and bus."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        for node in self._nodes.values():
            node.cancel.set()
        link, self._link = self._link, None
        if link is not None:
            link.stop_heartbeat()
        for pool in (self._boot_pool, self._bus_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self._reopen is not None and self._reopen.done() and self._reopen.exception() is None:
            self._reopen.result().close()
        if link is not None:
            link.close()
        log.info("fieldbus_closed")

    def __enter__(self) -> Fieldbus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_started", False) and not getattr(self, "_closed", True):
            log.warning("fieldbus_not_closed")

    def _open_bus(self) -> tuple[can.BusABC, bool]:
        src = self._source
        if isinstance(src, can.BusABC):
            return src, False
        if isinstance(src, BusSpec):
            try:  # count our own frames too, where the interface can loop them back
                return src.open(receive_own_messages=True), True
            except (NotImplementedError, TypeError):
                return src.open(), True
        return src(), True

    def _open_link(self) -> Link:
        bus, own = self._open_bus()
        try:
            link = Link(
                bus,
                own,
                self.config,
                self.profile,
                self._nodes,
                self._locks,
                self.meter,
                self._tpdo_cobs,
            )
            link.connect()
        except Exception:
            if own:
                bus.shutdown()
            raise
        return link

    # ------------------------------------------------------------------ control-loop API
    def poll(self, now: float) -> list[FieldbusEvent]:
        """Drain the inbox, update the node model, supervise heartbeats and the bus, advance
        boots. Returns what happened since the last call. Never blocks, never raises on a bus
        problem."""
        events, self._pending = self._pending, []
        link = self._link
        if link is None:
            events += self._poll_reopen(now)
            return events
        fault: str | None = None
        while True:
            try:
                item = link.inbox.get_nowait()
            except queue.Empty:
                break
            fault = self._handle(item, now, events) or fault
        factor = self.config.can.consumer_factor
        for node, age in list(supervision.timed_out(self._nodes.values(), now, factor)):
            limit = supervision.consumer_time_s(node, factor)
            why = f"no heartbeat for {age * 1000:.0f} ms (consumer time {limit * 1000:.0f} ms)"
            self._lose(node, now, why, events)
        for node in self._nodes.values():
            if node.state is NodeState.ERROR and node.retry_at is not None and now >= node.retry_at:
                self._boot(node, now, f"retry after {node.backoff_s:g} s", events)
        exc = link.notifier_exception
        if fault is None and exc is not None:
            fault = f"notifier thread died: {type(exc).__name__}: {exc}"
        if fault is None and self._send_failures >= supervision.SEND_FAILURES_MAX:
            fault = f"{self._send_failures} consecutive send failures"
        if fault is not None:
            events += self._bus_fault(now, fault, link)
        return events

    def _handle(self, item: tuple[Any, ...], now: float, events: list[FieldbusEvent]) -> str | None:
        kind = item[0]
        if kind == "tpdo":
            self._pdos[item[1]].receive(item[2], item[3], item[4])
        elif kind == "hb":
            self._heartbeat(self._nodes[item[1]], item[2], item[3], now, events)
        elif kind == "emcy":
            node = self._nodes[item[1]]
            ev = emcy_decode.decode(node.key, node.spec.node_id, item[2], now)
            if ev.is_reset:
                node.emcy_active.clear()
            else:
                node.emcy_active[ev.code] = ev.data
            log.warning(
                "emcy_received",
                node=node.key,
                node_id=f"0x{node.spec.node_id:02X}",
                code=f"0x{ev.code:04X}",
                text=ev.text,
                detail=ev.detail,
                register=f"0x{ev.register:02X}",
                data=ev.data.hex(),
                short=ev.short,
            )
            events.append(ev)
        elif kind == "boot":
            self._boot_done(self._nodes[item[1]], item[2], item[3], now, events)
        elif kind == "error_frame":
            text = supervision.error_frame_text(item[1], item[2])
            if supervision.is_bus_off(item[1]):
                return f"error frame: {text}"
            log.warning("bus_error_frame", error_id=f"0x{item[1]:08X}", text=text)
            events.append(BusWarning(now, text, item[1]))
        elif kind == "notifier_died":
            return f"notifier thread died: {type(item[1]).__name__}: {item[1]}"
        return None

    def values(self, key: str) -> StatusValues:
        """Latest status values of a node by semantic name, SI units (a live view)."""
        return self._pdo(key).status

    def set(self, key: str, **si_values: float) -> None:
        """Stage command values; all are validated first (``ValueError``: nothing changes)."""
        self._pdo(key).stage(si_values)

    def staged(self, key: str) -> dict[str, float]:
        return self._pdo(key).staged()

    def flush(self, now: float, inhibit_s: float | None = None) -> int:
        """Send changed RPDOs (after ``rpdo_inhibit_ms``) and refresh every RPDO each
        ``rpdo_refresh_ms``, to OPERATIONAL nodes only. Returns the frames sent.

        ``inhibit_s`` overrides the inhibit time for this call: the control loop passes a
        shorter one right after a command, so a new setpoint leaves at once. Afterwards
        :attr:`rpdos_held` counts the changed RPDOs the inhibit time still holds back."""
        link = self._link
        self.rpdos_held = 0
        if link is None:
            return 0
        inhibit = self._inhibit_s if inhibit_s is None else inhibit_s
        refresh = self._refresh_s
        sent = held = 0
        for key, node in self._nodes.items():
            if node.state is not NodeState.OPERATIONAL:
                continue
            for r in self._pdos[key].rpdos:  # NodePdos.due, inlined (35 nodes every tick)
                since = now - r.last_sent
                if not ((r.dirty and since >= inhibit) or since >= refresh):
                    held += r.dirty
                    self.rpdos_held = held
                    continue
                try:
                    link.send(r.cob_id, r.frame())
                except Exception as exc:
                    self._send_failures += 1
                    log.warning(
                        "rpdo_send_failed",
                        node=key,
                        cob_id=f"0x{r.cob_id:03X}",
                        error=str(exc),
                        failures=self._send_failures,
                    )
                    return sent
                self._send_failures = 0
                r.dirty, r.last_sent = False, now
                r.sent += 1
                sent += 1
        return sent

    def node_state(self, key: str) -> NodeState:
        return self._node(key).state

    def states(self) -> dict[str, NodeState]:
        return {key: n.state for key, n in self._nodes.items()}

    def node_status(self, key: str) -> NodeStatus:
        return status_of(self._node(key))

    def node_keys(self) -> list[str]:
        return list(self._nodes)

    def bus_load(self, now: float | None = None) -> BusLoadReading:
        """Frames per second and percent load over the last second, from the frames seen
        (worst-case bit stuffing; see :mod:`bptd.busload`)."""
        return self.meter.reading(time.monotonic() if now is None else now)

    @property
    def bus_up(self) -> bool:
        return self._link is not None

    # ------------------------------------------------------------------ SDO (worker threads)
    def sdo_read(self, key: str, name: str) -> float:
        """Read a profile object by SDO, SI units. Blocking: never from the loop or a callback."""
        ref = self._node(key).spec.device[name]
        return ref.to_si(self._sdo(key).read(ref.index, ref.subindex))

    def sdo_write(self, key: str, name: str, value: float) -> None:
        """Write a profile object by SDO (``ValueError`` when out of range). Blocking."""
        ref = self._node(key).spec.device[name]
        self._sdo(key).write(ref.index, ref.subindex, ref.to_raw(value))

    def _sdo(self, key: str) -> Any:
        link = self._link
        if link is None:
            raise NodeUnavailableError(f"{key}: the bus is down")
        return link.sdo[key]

    # ------------------------------------------------------------------ node model
    def _node(self, key: str) -> NodeModel:
        try:
            return self._nodes[key]
        except KeyError:
            raise KeyError(f"no node {key!r}; nodes: {', '.join(self._nodes)}") from None

    def _pdo(self, key: str) -> NodePdos:
        try:
            return self._pdos[key]  # the same keys as _nodes
        except KeyError:
            self._node(key)  # raises the KeyError that names the nodes
            raise

    # ------------------------------------------------------------------ bus faults
    def _bus_fault(self, now: float, reason: str, link: Link | None) -> list[FieldbusEvent]:
        events: list[FieldbusEvent] = [BusFault(now, reason)]
        log.error("bus_fault", reason=reason, bus=str(self._source))
        self._link = None
        self._send_failures = 0
        if self._bus_down_since is None:
            self._bus_down_since = now
        for node in self._nodes.values():
            if node.state is not NodeState.LOST:
                self._lose(node, now, f"bus fault: {reason}", events)
            else:
                node.cancel.set()
        self._schedule_reopen(link)
        return events

    def _schedule_reopen(self, old: Link | None) -> None:
        base = self.config.can.boot_retry_s
        delay = self._bus_backoff_s = (
            min(BACKOFF_MAX_S, self._bus_backoff_s * 2) if self._bus_backoff_s else base
        )
        self._reopen_attempts += 1
        closing = self._closing

        def reopen() -> Link:
            if old is not None:
                old.close()
            if closing.wait(delay):
                raise RuntimeError("closing")
            return self._open_link()

        assert self._bus_pool is not None
        self._reopen = self._bus_pool.submit(reopen)
        log.info("bus_reopen_scheduled", delay_s=delay, attempt=self._reopen_attempts)

    def _poll_reopen(self, now: float) -> list[FieldbusEvent]:
        fut = self._reopen
        if fut is None or not fut.done() or self._closing.is_set():
            return []
        self._reopen = None
        exc = fut.exception()
        if exc is not None:
            log.warning("bus_reopen_failed", error=str(exc), attempt=self._reopen_attempts)
            self._schedule_reopen(None)
            return []
        self._link = fut.result()
        down = now - (self._bus_down_since or now)
        attempts, self._reopen_attempts = self._reopen_attempts, 0
        self._bus_down_since, self._bus_backoff_s = None, 0.0
        log.info("bus_recovered", downtime_s=round(down, 3), attempts=attempts)
        return [BusRecovered(now, down, attempts)]
