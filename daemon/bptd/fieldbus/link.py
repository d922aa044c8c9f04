"""One connection to the bus: python-can bus, canopen ``Network``, supervisor node, listeners.

A :class:`Link` is built, connected, and torn down as a whole; after a bus fault the master
throws it away and builds a new one. Everything the notifier thread does is in here, and
all of it only enqueues into :attr:`Link.inbox` (plus one short, non-blocking update of the
node's :class:`~bptd.fieldbus.nodes.HeartbeatTracker`, so a boot worker can wait for a
state). Items are tuples, first element the kind:

- ``("hb", key, state, t)``         heartbeat or boot-up (state 0) of a node
- ``("emcy", key, payload, t)``     raw EMCY frame, any length
- ``("tpdo", key, cob_id, data, t)``
- ``("error_frame", error_id, data, t)``
- ``("notifier_died", exc, t)``
- ``("boot", key, generation, BootResult)``  from a boot worker

``t`` is ``time.monotonic()`` in the notifier thread (never ``msg.timestamp``, which is wall
time on ``virtual``).
"""

from __future__ import annotations

import queue
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import can
import canopen
import structlog

from bptd.busload import BusLoadMeter
from bptd.config import Config
from bptd.dbcgen import node_od
from bptd.fieldbus.emcy import EMCY_BASE
from bptd.fieldbus.nodes import NodeModel
from bptd.fieldbus.sdo import NodeSdo
from bptd.profile import Profile

log = structlog.get_logger(__name__)

NMT_COB_ID = 0x000
HEARTBEAT_BASE = 0x700
NOTIFIER_CYCLE_S = 0.1  # notifier recv() timeout: bounds how long stopping it takes
NOTIFIER_STOP_TIMEOUT_S = 2.0


class _BusListener(can.Listener):
    """Counts every frame for the bus-load meter and queues error frames (notifier thread)."""

    def __init__(self, inbox: queue.SimpleQueue[tuple[Any, ...]], meter: BusLoadMeter) -> None:
        self._inbox = inbox
        self._meter = meter

    def on_message_received(self, msg: can.Message) -> None:
        try:
            t = time.monotonic()
            if msg.is_error_frame:
                self._inbox.put(("error_frame", msg.arbitration_id, bytes(msg.data), t))
                return
            dlc = 0 if msg.is_remote_frame else msg.dlc
            self._meter.add(msg.arbitration_id, dlc, msg.is_extended_id, t)
        except Exception:  # never raise into python-can: it would kill the notifier
            log.exception("bus_listener_failed")

    def on_error(self, exc: Exception) -> None:
        # the notifier thread ends after this; the loop sees it and rebuilds the link
        self._inbox.put(("notifier_died", exc, time.monotonic()))


class Link:
    """The bus, the canopen network on it and every node's subscriptions."""

    def __init__(
        self,
        bus: can.BusABC,
        own_bus: bool,
        config: Config,
        profile: Profile,
        nodes: dict[str, NodeModel],
        locks: dict[str, threading.Lock],
        meter: BusLoadMeter,
        tpdo_cobs: dict[str, list[int]],
    ) -> None:
        self.bus = bus
        self.own_bus = own_bus
        self.inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.network = canopen.Network(bus)
        self.network.NOTIFIER_CYCLE = NOTIFIER_CYCLE_S
        self.network.listeners.append(_BusListener(self.inbox, meter))
        can_cfg = config.can
        sup_id = can_cfg.supervisor_node_id
        self.supervisor = canopen.LocalNode(sup_id, profile["supervisor"].object_dictionary(sup_id))
        self.supervisor.data_store[0x1017] = {0: struct.pack("<H", can_cfg.heartbeat_ms)}
        self.network.add_node(self.supervisor)
        self.remotes: dict[str, canopen.RemoteNode] = {}
        self.sdo: dict[str, NodeSdo] = {}
        for key, model in nodes.items():
            spec = model.spec
            remote = canopen.RemoteNode(spec.node_id, node_od(spec.device.eds, spec.node_id))
            self.network.add_node(remote)
            # our own EMCY decoder replaces canopen's (which drops frames shorter than 8)
            self.network.unsubscribe(EMCY_BASE + spec.node_id, remote.emcy.on_emcy)
            self.network.subscribe(EMCY_BASE + spec.node_id, self._emcy_cb(key))
            self.network.subscribe(HEARTBEAT_BASE + spec.node_id, self._hb_cb(model))
            for cob in tpdo_cobs[key]:
                self.network.subscribe(cob, self._tpdo_cb(key))
            self.remotes[key] = remote
            self.sdo[key] = NodeSdo(
                key, remote, locks[key], can_cfg.sdo_timeout_s, can_cfg.sdo_retries
            )
        self._closed = False

    # ------------------------------------------------------------------ notifier-thread callbacks
    def _hb_cb(self, model: NodeModel) -> Callable[[int, bytearray, float], None]:
        key, tracker, inbox = model.key, model.tracker, self.inbox

        def on_heartbeat(can_id: int, data: bytearray, timestamp: float) -> None:
            if not data:
                return
            t = time.monotonic()
            state = data[0] & 0x7F  # bit 7: toggle bit of node guarding
            inbox.put(("hb", key, state, t))
            tracker.beat(state, t)

        return on_heartbeat

    def _emcy_cb(self, key: str) -> Callable[[int, bytearray, float], None]:
        inbox = self.inbox

        def on_emcy(can_id: int, data: bytearray, timestamp: float) -> None:
            inbox.put(("emcy", key, bytes(data), time.monotonic()))

        return on_emcy

    def _tpdo_cb(self, key: str) -> Callable[[int, bytearray, float], None]:
        inbox = self.inbox

        def on_tpdo(can_id: int, data: bytearray, timestamp: float) -> None:
            inbox.put(("tpdo", key, can_id, bytes(data), time.monotonic()))

        return on_tpdo

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Start the notifier and the supervisor's heartbeat (OPERATIONAL)."""
        self.network.connect()
        nmt = self.supervisor.nmt
        nmt.state = "RESET"  # boot-up message
        nmt.state = "PRE-OPERATIONAL"  # heartbeat from 0x1017
        nmt.state = "OPERATIONAL"

    @property
    def notifier_exception(self) -> BaseException | None:
        notifier = self.network.notifier
        return notifier.exception if notifier is not None else None

    def send(self, cob_id: int, data: bytes) -> None:
        """Send one frame (raises ``can.CanError``, or the notifier's exception)."""
        self.network.send_message(cob_id, data)

    def send_nmt(self, command: int, node_id: int) -> None:
        self.network.send_message(NMT_COB_ID, bytes((command, node_id)))
        log.debug("nmt_sent", command=f"0x{command:02X}", node_id=f"0x{node_id:02X}")

    def stop_heartbeat(self) -> None:
        try:
            self.supervisor.nmt.stop_heartbeat()
        except Exception:
            log.debug("heartbeat_stop_failed", exc_info=True)

    def close(self) -> None:
        """Stop the heartbeat, the notifier and (when owned) the bus; never raises."""
        if self._closed:
            return
        self._closed = True
        self.stop_heartbeat()
        notifier = self.network.notifier
        if notifier is not None:
            try:
                notifier.stop(NOTIFIER_STOP_TIMEOUT_S)
            except Exception:
                log.debug("notifier_stop_failed", exc_info=True)
        if self.own_bus:
            try:
                self.bus.shutdown()
            except Exception:
                log.debug("bus_shutdown_failed", exc_info=True)
