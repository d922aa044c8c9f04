"""Node state transitions of the master (the table is in :mod:`bptd.fieldbus.nodes`).

A mixin of :class:`bptd.fieldbus.master.Fieldbus`, kept apart so each file stays small: it
runs only in the control-loop thread, inside ``poll()``, and uses the master's node model
(``_nodes``, ``_pdos``), its current link and its boot pool.
"""

from __future__ import annotations

import concurrent.futures
import threading

import structlog

from bptd.config import Config
from bptd.fieldbus.boot import BootJob, BootParams, BootResult, Outcome
from bptd.fieldbus.events import FieldbusEvent, NodeStateChanged
from bptd.fieldbus.link import Link
from bptd.fieldbus.nodes import (
    BACKOFF_MAX_S,
    NMT_BOOTUP,
    NMT_OPERATIONAL,
    NMT_STATE_NAMES,
    NodeModel,
    NodeState,
)
from bptd.fieldbus.pdo import NodePdos

log = structlog.get_logger("bptd.fieldbus.master")


def _nmt_name(state: int) -> str:
    return NMT_STATE_NAMES.get(state, f"0x{state:02X}")


class NodeLifecycle:
    """Boot, loss and return of nodes; every change is one event and one log line."""

    config: Config
    _nodes: dict[str, NodeModel]
    _pdos: dict[str, NodePdos]
    _link: Link | None
    _boot_pool: concurrent.futures.ThreadPoolExecutor | None
    _boot_params: BootParams
    _closing: threading.Event

    def _change(
        self, node: NodeModel, new: NodeState, reason: str, now: float, events: list[FieldbusEvent]
    ) -> None:
        old = node.state
        node.state, node.reason, node.since = new, reason, now
        if old is NodeState.OPERATIONAL or new is NodeState.OPERATIONAL:
            self._pdos[node.key].reset_commands()  # never stale setpoints after a re-boot
        level = "info" if new in (NodeState.BOOTING, NodeState.OPERATIONAL) else "warning"
        getattr(log, level)(
            "node_state_changed",
            node=node.key,
            node_id=f"0x{node.spec.node_id:02X}",
            old=old.value,
            new=new.value,
            reason=reason,
        )
        events.append(
            NodeStateChanged(now, node.key, node.spec.node_id, old, new, reason, node.identity)
        )

    def _heartbeat(
        self, node: NodeModel, state: int, t: float, now: float, events: list[FieldbusEvent]
    ) -> None:
        node.last_heartbeat, node.nmt_state = t, state
        st = node.state
        if st in (NodeState.ABSENT, NodeState.LOST):
            seen = "boot-up" if state == NMT_BOOTUP else f"heartbeat ({_nmt_name(state)})"
            self._boot(node, now, f"{seen} received", events)
        elif state == NMT_BOOTUP and st is NodeState.BOOTING:
            log.info("node_boot_restarted", node=node.key, reason="boot-up during boot")
            self._boot(node, now, "boot-up received during boot", events, quiet=True)
        elif state == NMT_BOOTUP:
            why = {
                NodeState.OPERATIONAL: "device reset",
                NodeState.REFUSED: "device reset or replaced",
            }.get(st, "device reset")
            self._boot(node, now, f"boot-up received ({why})", events)
        elif st is NodeState.OPERATIONAL and state != NMT_OPERATIONAL:
            self._boot(node, now, f"heartbeat reports {_nmt_name(state)}: left OPERATIONAL", events)

    def _boot(
        self,
        node: NodeModel,
        now: float,
        reason: str,
        events: list[FieldbusEvent],
        quiet: bool = False,
    ) -> None:
        link, pool = self._link, self._boot_pool
        if link is None or pool is None or self._closing.is_set():
            return
        node.cancel.set()
        node.cancel = threading.Event()
        node.generation += 1
        node.retry_at = None
        if not quiet or node.state is not NodeState.BOOTING:
            self._change(node, NodeState.BOOTING, reason, now, events)
        job = BootJob(
            node.spec,
            link.sdo[node.key],
            node.tracker,
            link.send_nmt,
            self._boot_params,
            node.cancel,
        )
        key, gen, inbox = node.key, node.generation, link.inbox

        def run() -> None:
            try:
                result = job.run()
            except Exception as exc:  # a bug: report it as a failed boot, never lose it
                log.exception("boot_crashed", node=key)
                result = BootResult(Outcome.FAILED, f"boot crashed: {exc!r}")
            inbox.put(("boot", key, gen, result))

        try:
            pool.submit(run)
        except RuntimeError:  # pool shut down: closing
            pass

    def _boot_done(
        self, node: NodeModel, gen: int, result: BootResult, now: float, events: list[FieldbusEvent]
    ) -> None:
        if gen != node.generation or node.state is not NodeState.BOOTING:
            return  # a stale attempt (the node was lost or reset meanwhile)
        if result.identity is not None:
            node.identity = result.identity
        if result.outcome is Outcome.OK:
            node.backoff_s = 0.0
            node.boots += 1
            self._change(node, NodeState.OPERATIONAL, result.reason, now, events)
        elif result.outcome is Outcome.REFUSED:
            self._change(node, NodeState.REFUSED, result.reason, now, events)
        elif result.outcome is Outcome.FAILED:
            base = self.config.can.boot_retry_s
            node.backoff_s = min(BACKOFF_MAX_S, node.backoff_s * 2 if node.backoff_s else base)
            node.retry_at = now + node.backoff_s
            self._change(
                node,
                NodeState.ERROR,
                f"{result.reason}; retry in {node.backoff_s:g} s",
                now,
                events,
            )

    def _lose(self, node: NodeModel, now: float, reason: str, events: list[FieldbusEvent]) -> None:
        node.cancel.set()
        node.generation += 1
        node.retry_at = None
        node.last_heartbeat = None
        self._change(node, NodeState.LOST, reason, now, events)
