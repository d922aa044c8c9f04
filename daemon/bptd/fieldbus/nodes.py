"""The master's model of each configured CANopen node.

A node key is ``chipset.<connector>``, ``dcdc.<n>`` or ``afe.<n>``. Each node is in exactly
one :class:`NodeState`; every change is a :class:`~bptd.fieldbus.events.NodeStateChanged`
event with its reason. The transitions (``poll()`` applies them; S = CiA 302-2 "boot slave"
figure, H = CiA 301 heartbeat consumer, B = bus-fault recovery)::

    ABSENT      -> BOOTING       first heartbeat or boot-up seen                       (S)
    BOOTING     -> OPERATIONAL   identity checked, configured, read back, started,
                                 OPERATIONAL confirmed by its heartbeat                 (S)
    BOOTING     -> REFUSED       0x1000 / 0x1018 differ from EDS / config (S: C, D, M-O)
    BOOTING     -> ERROR         SDO failure, read-back mismatch, start not confirmed (S: B, J, K)
    ERROR       -> BOOTING       retry after the backoff (boot_retry_s doubling, max 10 s)
    REFUSED     -> BOOTING       a boot-up message (the device was reset or replaced)
    OPERATIONAL -> BOOTING       boot-up message (device reset), or heartbeat state
                                 other than OPERATIONAL (it left OPERATIONAL itself)     (H)
    any seen    -> LOST          no heartbeat within consumer_factor x its period        (H)
    LOST        -> BOOTING       a heartbeat or boot-up again                            (H)
    any         -> LOST          bus fault (bus-off, notifier death, send failures); once
                                 the bus is reopened, a heartbeat boots it again         (B)
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field

from bptd.config import Config
from bptd.profile import DeviceProfile, Profile

#: NMT states in the heartbeat byte (CiA 301, 7.2.8.3.2).
NMT_BOOTUP, NMT_STOPPED, NMT_OPERATIONAL, NMT_PRE_OPERATIONAL = 0x00, 0x04, 0x05, 0x7F
NMT_STATE_NAMES = {
    NMT_BOOTUP: "BOOT-UP",
    NMT_STOPPED: "STOPPED",
    NMT_OPERATIONAL: "OPERATIONAL",
    NMT_PRE_OPERATIONAL: "PRE-OPERATIONAL",
}

BACKOFF_MAX_S = 10.0


class NodeState(enum.Enum):
    """What the rest of the daemon may assume about a node."""

    ABSENT = "absent"  # not seen since start or since the bus was reopened
    BOOTING = "booting"  # boot sequence running in a worker
    OPERATIONAL = "operational"  # booted, started, heartbeat fresh: usable
    LOST = "lost"  # was seen, heartbeat timed out (or the bus failed)
    REFUSED = "refused"  # identity mismatch: never configured, never started
    ERROR = "error"  # boot failed; retried with backoff

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Identity:
    """0x1000 and 0x1018:1..4 as read from a device."""

    device_type: int
    vendor_id: int
    product_code: int
    revision: int
    serial: int

    def __str__(self) -> str:
        return (
            f"vendor 0x{self.vendor_id:08X} product 0x{self.product_code:08X} "
            f"revision 0x{self.revision:08X} serial 0x{self.serial:08X}"
        )


@dataclass(frozen=True)
class NodeSpec:
    """What the configuration says about one node."""

    key: str
    kind: str  # profile device kind: chipset, dcdc, afe
    node_id: int
    serial: int  # expected 0x1018:4, 0 = any
    heartbeat_ms: int  # producer period the master configures in 0x1017
    device: DeviceProfile

    @property
    def label(self) -> str:
        return f"{self.key} (node 0x{self.node_id:02X})"


def node_specs(config: Config, profile: Profile) -> list[NodeSpec]:
    """Every configured node in a stable order: chipsets, then DC/DC and AFE per module."""
    specs = [
        NodeSpec(
            f"chipset.{c.name}",
            "chipset",
            c.chipset_node_id,
            c.serial,
            c.heartbeat_ms,
            profile["chipset"],
        )
        for c in config.connectors
    ]
    for m in sorted(config.modules, key=lambda m: m.n):
        specs.append(
            NodeSpec(
                f"dcdc.{m.n}",
                "dcdc",
                m.dcdc_node_id,
                m.serial_dcdc,
                m.heartbeat_ms,
                profile["dcdc"],
            )
        )
        specs.append(
            NodeSpec(
                f"afe.{m.n}", "afe", m.afe_node_id, m.serial_afe, m.heartbeat_ms, profile["afe"]
            )
        )
    return specs


class HeartbeatTracker:
    """The latest heartbeat of one node, shared with the boot worker.

    Written by the notifier thread (one short critical section, never blocks), read by the
    boot worker that waits for a state with :meth:`wait_for`. The control loop uses the
    inbox instead; this exists so a worker can confirm a state without owning the loop.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.state: int | None = None
        self.at: float = 0.0  # time.monotonic() of the last heartbeat
        self.count = 0

    def beat(self, state: int, at: float) -> None:
        with self._cond:
            self.state, self.at = state, at
            self.count += 1
            self._cond.notify_all()

    def wait_for(
        self, states: tuple[int, ...], after: float, timeout: float, cancel: threading.Event
    ) -> int | None:
        """Wait for a heartbeat received after ``after`` whose state is in ``states``.

        Returns the state, or None on timeout or when ``cancel`` is set.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self.at > after and self.state in states):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or cancel.is_set():
                    return None
                self._cond.wait(min(remaining, 0.05))
            return self.state


@dataclass
class NodeModel:
    """The loop-owned state of one node (only ``poll()`` and its helpers change it)."""

    spec: NodeSpec
    tracker: HeartbeatTracker = field(default_factory=HeartbeatTracker)
    state: NodeState = NodeState.ABSENT
    reason: str = "not seen yet"
    since: float = 0.0
    last_heartbeat: float | None = None  # monotonic, from the notifier callback
    nmt_state: int | None = None  # last heartbeat byte
    identity: Identity | None = None
    generation: int = 0  # boot attempt counter; stale worker results are ignored
    cancel: threading.Event = field(default_factory=threading.Event)
    retry_at: float | None = None  # ERROR: when to boot again
    backoff_s: float = 0.0
    boots: int = 0  # successful boots
    emcy_active: dict[int, bytes] = field(default_factory=dict)  # code -> data

    @property
    def key(self) -> str:
        return self.spec.key


@dataclass(frozen=True)
class NodeStatus:
    """A read-only picture of a node for telemetry (``Fieldbus.node_status``)."""

    key: str
    node_id: int
    state: NodeState
    reason: str
    since: float
    last_heartbeat: float | None
    nmt_state: str | None
    identity: Identity | None
    boots: int
    emcy_active: tuple[int, ...]


def status_of(node: NodeModel) -> NodeStatus:
    return NodeStatus(
        key=node.key,
        node_id=node.spec.node_id,
        state=node.state,
        reason=node.reason,
        since=node.since,
        last_heartbeat=node.last_heartbeat,
        nmt_state=(
            None
            if node.nmt_state is None
            else NMT_STATE_NAMES.get(node.nmt_state, f"0x{node.nmt_state:02X}")
        ),
        identity=node.identity,
        boots=node.boots,
        emcy_active=tuple(sorted(node.emcy_active)),
    )
