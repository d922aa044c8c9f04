"""Boot of one node (CiA 302-2 "boot slave", simplified), run in a worker thread.

Sequence (letters: CiA 302-2 boot error codes the step can end with):

0. The node is known to be alive (the loop starts a boot on its boot-up or heartbeat).
   If its last heartbeat says OPERATIONAL or STOPPED (it was not reset, e.g. the daemon
   restarted), send NMT *enter PRE-OPERATIONAL* and wait for a PRE-OPERATIONAL heartbeat.
   A running stage is never reconfigured while OPERATIONAL, and no reset is needed:
   every parameter that matters is written again below.                               (E/F)
1. Read 0x1000 and compare with the EDS.                                               (B/C)
2. Read 0x1018:1..4: vendor-ID, product code and revision major (bits 16-31) must equal
   the EDS; the serial must equal the configured one unless that is 0.          (D/M/N/O)
   A mismatch refuses the node: it is never configured nor started.
3. PDOs, per CiA 301 (PRE-OPERATIONAL): COB-ID with bit 31 set (disable); transmission
   type, inhibit time, event timer; mapping count 0; mapping entries; mapping count;
   COB-ID enabled. Values are the EDS defaults.                                          (J)
4. 0x1016:1 = supervisor node-id << 16 | consumer_factor x supervisor heartbeat (ms), so
   the device goes safe when the supervisor dies; 0x1017 = the node's configured
   heartbeat period.                                                                     (J)
5. Read back every object written in 3-4 and compare.                                    (J)
6. NMT start; confirm OPERATIONAL by a heartbeat received after the command.             (K)

The worker checks ``cancel`` between steps (set by the loop when the node is lost, resets
or the master closes) and gives up quietly.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from canopen.objectdictionary import ObjectDictionary

from bptd.dbcgen import node_od
from bptd.errors import FieldbusError
from bptd.fieldbus.nodes import (
    NMT_OPERATIONAL,
    NMT_PRE_OPERATIONAL,
    NMT_STOPPED,
    HeartbeatTracker,
    Identity,
    NodeSpec,
)
from bptd.fieldbus.sdo import NodeSdo

#: NMT command specifiers (CiA 301 7.2.8.3.1).
NMT_START, NMT_STOP, NMT_ENTER_PREOP, NMT_RESET_NODE, NMT_RESET_COMM = 0x01, 0x02, 0x80, 0x81, 0x82
COB_ID_INVALID = 0x80000000
CONSUMER_HEARTBEAT = 0x1016
PRODUCER_HEARTBEAT = 0x1017


class Outcome(enum.Enum):
    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class BootResult:
    outcome: Outcome
    reason: str
    identity: Identity | None = None


@dataclass(frozen=True)
class BootParams:
    """What a boot needs besides the node itself (from ``config.can``)."""

    supervisor_node_id: int
    supervisor_heartbeat_ms: int
    consumer_factor: float
    boot_timeout_s: float


class Cancelled(Exception):
    """The loop no longer wants this boot attempt."""


@dataclass
class BootJob:
    spec: NodeSpec
    sdo: NodeSdo
    tracker: HeartbeatTracker
    send_nmt: Callable[[int, int], None]  # (command, node-id)
    params: BootParams
    cancel: threading.Event

    # ------------------------------------------------------------------ helpers
    def _check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled

    def _read(self, index: int, sub: int) -> int:
        self._check()
        return self.sdo.read(index, sub)

    def _write(self, index: int, sub: int, value: int, written: list[tuple[int, int, int]]) -> None:
        self._check()
        self.sdo.write(index, sub, value)
        written.append((index, sub, value))

    def _wait_state(self, states: tuple[int, ...], after: float, timeout: float) -> int | None:
        return self.tracker.wait_for(states, after, timeout, self.cancel)

    @property
    def _confirm_timeout(self) -> float:
        period = self.spec.heartbeat_ms / 1000.0
        return min(self.params.boot_timeout_s, self.params.consumer_factor * period + 1.0)

    # ------------------------------------------------------------------ sequence
    def run(self) -> BootResult:
        try:
            return self._run()
        except Cancelled:
            return BootResult(Outcome.CANCELLED, "cancelled")
        except FieldbusError as exc:
            return BootResult(Outcome.FAILED, str(exc))

    def _run(self) -> BootResult:
        spec, od = self.spec, node_od(self.spec.device.eds, self.spec.node_id)
        # 0: make sure the node is in PRE-OPERATIONAL
        if self.tracker.state in (NMT_OPERATIONAL, NMT_STOPPED):
            sent = time.monotonic()
            self._check()
            self.send_nmt(NMT_ENTER_PREOP, spec.node_id)
            if self._wait_state((NMT_PRE_OPERATIONAL,), sent, self._confirm_timeout) is None:
                self._check()
                return BootResult(Outcome.FAILED, "no PRE-OPERATIONAL heartbeat after NMT command")
        # 1-2: identity
        ident = Identity(
            device_type=self._read(0x1000, 0),
            vendor_id=self._read(0x1018, 1),
            product_code=self._read(0x1018, 2),
            revision=self._read(0x1018, 3),
            serial=self._read(0x1018, 4),
        )
        want_type = int(od[0x1000].default or 0)
        ident_od = od[0x1018]
        want_vendor = int(ident_od[1].default or 0)
        want_product = int(ident_od[2].default or 0)
        want_revision = int(ident_od[3].default or 0)
        problems = []
        if ident.device_type != want_type:
            problems.append(f"device type 0x{ident.device_type:08X} != 0x{want_type:08X}")
        if ident.vendor_id != want_vendor:
            problems.append(f"vendor-ID 0x{ident.vendor_id:08X} != 0x{want_vendor:08X}")
        if ident.product_code != want_product:
            problems.append(f"product code 0x{ident.product_code:08X} != 0x{want_product:08X}")
        if ident.revision >> 16 != want_revision >> 16:
            problems.append(
                f"revision major 0x{ident.revision >> 16:04X} != 0x{want_revision >> 16:04X}"
            )
        if spec.serial and ident.serial != spec.serial:
            problems.append(f"serial 0x{ident.serial:08X} != configured 0x{spec.serial:08X}")
        if problems:
            return BootResult(Outcome.REFUSED, "identity mismatch: " + "; ".join(problems), ident)
        # 3: PDO communication and mapping parameters from the EDS
        written: list[tuple[int, int, int]] = []
        for comm_base, map_base in ((0x1400, 0x1600), (0x1800, 0x1A00)):
            for n in range(512):
                comm, mapping = comm_base + n, map_base + n
                if comm not in od:
                    break
                self._configure_pdo(od, comm, mapping, written)
        # 4: heartbeat consumer (of the supervisor) and producer
        p = self.params
        consumer_ms = min(0xFFFF, round(p.consumer_factor * p.supervisor_heartbeat_ms))
        if CONSUMER_HEARTBEAT in od:
            value = (p.supervisor_node_id & 0x7F) << 16 | consumer_ms
            self._write(CONSUMER_HEARTBEAT, 1, value, written)
        self._write(PRODUCER_HEARTBEAT, 0, spec.heartbeat_ms, written)
        # 5: read back
        for index, sub, value in written:
            got = self._read(index, sub)
            if got != value:
                return BootResult(
                    Outcome.FAILED,
                    f"read-back 0x{index:04X}:{sub:02X} = 0x{got:X}, wrote 0x{value:X}",
                    ident,
                )
        # 6: start, confirmed by the next heartbeat
        sent = time.monotonic()
        self._check()
        self.send_nmt(NMT_START, spec.node_id)
        if self._wait_state((NMT_OPERATIONAL,), sent, self._confirm_timeout) is None:
            self._check()
            return BootResult(Outcome.FAILED, "no OPERATIONAL heartbeat after NMT start", ident)
        return BootResult(Outcome.OK, f"booted: {ident}", ident)

    def _configure_pdo(
        self, od: ObjectDictionary, comm: int, mapping: int, written: list[tuple[int, int, int]]
    ) -> None:
        comm_rec = od[comm]
        cob = int(comm_rec[1].default or 0)
        # disable first (CiA 301: mapping may only change while the PDO is invalid)
        self.sdo.write(comm, 1, cob | COB_ID_INVALID)
        if cob & COB_ID_INVALID:
            written.append((comm, 1, cob))
            return
        for sub in (2, 3, 5):
            if sub in comm_rec:
                self._write(comm, sub, int(comm_rec[sub].default or 0), written)
        if mapping in od:
            map_rec = od[mapping]
            count = int(map_rec[0].default or 0)
            self._write(mapping, 0, 0, [])
            for sub in range(1, count + 1):
                self._write(mapping, sub, int(map_rec[sub].default or 0), written)
            self._write(mapping, 0, count, written)
        self._write(comm, 1, cob, written)
