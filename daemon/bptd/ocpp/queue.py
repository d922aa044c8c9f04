"""The transaction message queue: an append-only, fsynced JSON-lines file.

Every transaction message (1.6 StartTransaction / MeterValues of a transaction /
StopTransaction, 2.x TransactionEvent) is written here *before* it is sent, with a sequence
number and the OCPP message id it will be sent with. The sender delivers the head of the
queue, waits for the CSMS's answer, and appends an acknowledgement; only then does the next
message go. So messages reach the CSMS in the order they happened, also across connection
losses and restarts of the frontend, and none is lost. A message whose answer was lost with
the connection is sent again after the reconnect with the same message id (and, in 2.x,
the same ``seqNo``), so a CSMS can recognise the repetition.

Records (one JSON object per line):

- ``{"op": "put", "seq": 7, "id": "<message id>", "action": "TransactionEvent",
  "payload": {...}, "meta": {...}}``
- ``{"op": "ack", "seq": 7, "tx": ["<own transaction id>", <CSMS transactionId>]}`` (``tx`` only
  for a 1.6 StartTransaction: the id the CSMS gave)
- ``{"op": "base", "seq": 7, "tx_ids": {...}}`` first line after a compaction

A torn last line (a crash in the middle of a write) is dropped on load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

#: compact the file when nothing is pending and it has grown beyond this
COMPACT_BYTES = 256 * 1024
#: CSMS transaction ids kept across compactions (the recent transactions)
KEEP_TX_IDS = 64


@dataclass
class Item:
    seq: int
    msg_id: str
    action: str
    payload: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0  # CALLERRORs / bad answers so far (not persisted)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class OfflineQueue:
    """The queue file at ``path`` (created with its directory when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: dict[int, Item] = {}
        self.tx_ids: dict[str, Any] = {}  # own transaction id -> the CSMS's (1.6)
        self._seq = 0
        self._changed: asyncio.Event | None = None
        self._load()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open)

    # ------------------------------------------------------------------ file
    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        offset = 0
        keep = len(raw)
        for line in raw.splitlines(keepends=True):
            begin, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                if offset == len(raw):  # the last line, torn by a crash in the middle of a write
                    log.warning("ocpp_queue_torn_line_dropped", path=str(self.path))
                    keep = begin
                else:
                    log.error("ocpp_queue_bad_line", path=str(self.path), offset=begin)
                continue
            self._replay(rec)
        if keep < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
        elif raw and not raw.endswith(b"\n"):  # a whole record whose newline was not written
            with open(self.path, "ab") as fh:
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())

    def _replay(self, rec: dict[str, Any]) -> None:
        op = rec.get("op")
        if op == "put":
            seq = int(rec["seq"])
            self._pending[seq] = Item(
                seq,
                str(rec["id"]),
                str(rec["action"]),
                rec.get("payload") or {},
                rec.get("meta") or {},
            )
            self._seq = max(self._seq, seq)
        elif op == "ack":
            self._pending.pop(int(rec["seq"]), None)
            if rec.get("tx"):
                own, theirs = rec["tx"]
                self.tx_ids[str(own)] = theirs
        elif op == "base":
            self._seq = max(self._seq, int(rec.get("seq", 0)))
            self.tx_ids.update(rec.get("tx_ids") or {})

    def _append(self, rec: dict[str, Any]) -> None:
        self._fh.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _compact(self) -> None:
        keep = dict(list(self.tx_ids.items())[-KEEP_TX_IDS:])
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"op": "base", "seq": self._seq, "tx_ids": keep}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._fh.close()
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self.tx_ids = keep
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    # ------------------------------------------------------------------ queue
    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def put(self, action: str, payload: dict[str, Any], meta: dict[str, Any] | None = None) -> Item:
        """Write one message durably; it is sent after every message put before it."""
        self._seq += 1
        item = Item(self._seq, str(uuid.uuid4()), action, payload, dict(meta or {}))
        self._append(
            {
                "op": "put",
                "seq": item.seq,
                "id": item.msg_id,
                "action": action,
                "payload": payload,
                "meta": item.meta,
            }
        )
        self._pending[item.seq] = item
        self._notify()
        return item

    def ack(self, seq: int, tx: tuple[str, Any] | None = None) -> None:
        """The CSMS answered message ``seq`` (or it was given up): never send it again."""
        if seq not in self._pending:
            return
        rec: dict[str, Any] = {"op": "ack", "seq": seq}
        if tx is not None:
            rec["tx"] = [tx[0], tx[1]]
            self.tx_ids[str(tx[0])] = tx[1]
        self._append(rec)
        del self._pending[seq]
        if not self._pending and self.path.stat().st_size > COMPACT_BYTES:
            self._compact()
        self._notify()

    def pending(self) -> list[Item]:
        return [self._pending[s] for s in sorted(self._pending)]

    def head(self) -> Item | None:
        return self._pending[min(self._pending)] if self._pending else None

    def __len__(self) -> int:
        return len(self._pending)

    async def next(self) -> Item:
        """Wait for the oldest unacknowledged message."""
        if self._changed is None:
            self._changed = asyncio.Event()
        while True:
            item = self.head()
            if item is not None:
                return item
            self._changed.clear()
            await self._changed.wait()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until nothing is pending (True) or ``timeout_s`` passed (False)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            await wait_event(self._changed, remaining)
        return True


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """``event.wait()`` for at most ``timeout_s``: True when it was set. (Not
    ``asyncio.wait_for``: before Python 3.12 it can swallow a cancellation that comes as the
    event is set, and a task that loops on it then never ends.)"""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
