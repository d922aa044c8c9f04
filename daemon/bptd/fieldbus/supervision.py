"""Heartbeat consumer of the master (canopen has none), and the bus-health rules.

CiA 301 heartbeat consumer: monitoring of a node starts with its first heartbeat; the
node is lost when no heartbeat arrives within its consumer time, here
``consumer_factor x`` its producer period. The receive time is taken with
``time.monotonic()`` in the notifier thread, so a busy control loop does not make nodes
look lost: loss is detected by the first ``poll()`` after ``last + timeout``, i.e. within
the timeout plus one loop tick.

Until the boot has written 0x1017, a device heartbeats at its own default period (EDS
0x1017), so before OPERATIONAL the consumer time uses the longer of the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bptd.dbcgen import node_od
from bptd.fieldbus.nodes import NodeModel, NodeState

#: States in which a node's heartbeat is supervised (it has been seen and not lost).
SUPERVISED = frozenset(
    (NodeState.BOOTING, NodeState.OPERATIONAL, NodeState.REFUSED, NodeState.ERROR)
)

#: Consecutive failed sends (RPDO, NMT) that count as a bus fault.
SEND_FAILURES_MAX = 3

#: linux/can/error.h: error class bits in the arbitration id of an error frame.
CAN_ERR_TX_TIMEOUT = 0x00000001
CAN_ERR_LOSTARB = 0x00000002
CAN_ERR_CRTL = 0x00000004
CAN_ERR_PROT = 0x00000008
CAN_ERR_TRX = 0x00000010
CAN_ERR_ACK = 0x00000020
CAN_ERR_BUSOFF = 0x00000040
CAN_ERR_BUSERROR = 0x00000080
CAN_ERR_RESTARTED = 0x00000100
#: data[1] of a CAN_ERR_CRTL frame
CAN_ERR_CRTL_RX_PASSIVE = 0x10
CAN_ERR_CRTL_TX_PASSIVE = 0x20

_ERROR_CLASSES = (
    (CAN_ERR_TX_TIMEOUT, "TX timeout"),
    (CAN_ERR_LOSTARB, "lost arbitration"),
    (CAN_ERR_CRTL, "controller problem"),
    (CAN_ERR_PROT, "protocol violation"),
    (CAN_ERR_TRX, "transceiver status"),
    (CAN_ERR_ACK, "no ACK"),
    (CAN_ERR_BUSOFF, "bus-off"),
    (CAN_ERR_BUSERROR, "bus error"),
    (CAN_ERR_RESTARTED, "controller restarted"),
)


def error_frame_text(error_id: int, data: bytes) -> str:
    """``bus-off`` / ``controller problem (error passive)`` / ..."""
    parts = [name for bit, name in _ERROR_CLASSES if error_id & bit]
    passive = CAN_ERR_CRTL_RX_PASSIVE | CAN_ERR_CRTL_TX_PASSIVE
    if error_id & CAN_ERR_CRTL and len(data) > 1 and data[1] & passive:
        parts.append("error passive")
    return ", ".join(parts) or f"error frame 0x{error_id:08X}"


def is_bus_off(error_id: int) -> bool:
    return bool(error_id & CAN_ERR_BUSOFF)


def consumer_time_s(node: NodeModel, factor: float) -> float:
    """How long the master waits for the next heartbeat of ``node``."""
    period_ms = node.spec.heartbeat_ms
    if node.state is not NodeState.OPERATIONAL:
        od = node_od(node.spec.device.eds, node.spec.node_id)
        if 0x1017 in od:
            period_ms = max(period_ms, int(od[0x1017].default or 0))
    return factor * period_ms / 1000.0


def timed_out(
    nodes: Iterable[NodeModel], now: float, factor: float
) -> Iterator[tuple[NodeModel, float]]:
    """Supervised nodes whose last heartbeat is older than their consumer time, with its age."""
    for node in nodes:
        if node.state in SUPERVISED and node.last_heartbeat is not None:
            age = now - node.last_heartbeat
            if age > consumer_time_s(node, factor):
                yield node, age
