"""Crash-safe session records: an append-only JSON-lines journal with fsync.

Every session writes ``start``, ``progress`` (energy so far, at most every
``fsync_interval_s`` of energy transfer and at every session event), ``fault`` and
``stop`` lines to ``<dir>/sessions.jsonl``. Each line is written whole with one ``write``
and flushed with ``fsync`` before the call returns, so after a crash (``kill -9``, power
loss) the journal holds everything up to the last completed call. On start,
:meth:`SessionJournal.recover` drops a torn last line and closes every session that has a
``start`` and no ``stop`` as ``interrupted`` with its last recorded energy.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)

JOURNAL_NAME = "sessions.jsonl"


@dataclass
class SessionRecord:
    """The summary of one session, as rebuilt from the journal."""

    session_id: str
    connector: str
    started: str
    stopped: str | None = None
    reason: str | None = None
    energy_import_wh: float = 0.0  # to the vehicle
    energy_export_wh: float = 0.0  # from the vehicle
    peak_charge_power_w: float = 0.0
    peak_discharge_power_w: float = 0.0
    faults: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.stopped is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "connector": self.connector,
            "started": self.started,
            "stopped": self.stopped,
            "reason": self.reason,
            "energy_import_wh": round(self.energy_import_wh, 3),
            "energy_export_wh": round(self.energy_export_wh, 3),
            "peak_charge_power_w": round(self.peak_charge_power_w, 1),
            "peak_discharge_power_w": round(self.peak_discharge_power_w, 1),
            "faults": list(self.faults),
            **({"extra": self.extra} if self.extra else {}),
        }


def _utc() -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() % 1 * 1000):03d}Z"
    )


class SessionJournal:
    """The journal in ``directory``; one instance per daemon."""

    def __init__(self, directory: str | pathlib.Path, fsync_interval_s: float = 10.0) -> None:
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / JOURNAL_NAME
        self.fsync_interval_s = fsync_interval_s
        self._fd: int | None = None
        self._last_progress: dict[str, float] = {}

    # ------------------------------------------------------------------ low level
    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
            )
        return self._fd

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        fd = self._open()
        written = os.write(fd, line)
        if written != len(line):  # pragma: no cover - disk full
            raise OSError(f"short write to {self.path}")
        os.fsync(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SessionJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def start(self, connector: str, now: float, **extra: Any) -> str:
        sid = uuid.uuid4().hex[:16]
        self._append(
            {
                "type": "start",
                "session_id": sid,
                "connector": connector,
                "t": _utc(),
                **({"extra": extra} if extra else {}),
            }
        )
        self._last_progress[sid] = now
        log.info("record_session_started", session_id=sid, connector=connector)
        return sid

    def progress(
        self,
        sid: str,
        now: float,
        energy_import_wh: float,
        energy_export_wh: float,
        peak_charge_power_w: float = 0.0,
        peak_discharge_power_w: float = 0.0,
        force: bool = False,
    ) -> bool:
        """Record the energy so far; written when ``force`` or the interval has passed."""
        last = self._last_progress.get(sid)
        if not force and last is not None and now - last < self.fsync_interval_s:
            return False
        self._append(
            {
                "type": "progress",
                "session_id": sid,
                "t": _utc(),
                "energy_import_wh": energy_import_wh,
                "energy_export_wh": energy_export_wh,
                "peak_charge_power_w": peak_charge_power_w,
                "peak_discharge_power_w": peak_discharge_power_w,
            }
        )
        self._last_progress[sid] = now
        return True

    def fault(self, sid: str, reason: str) -> None:
        self._append({"type": "fault", "session_id": sid, "t": _utc(), "reason": reason})

    def stop(
        self,
        sid: str,
        reason: str,
        energy_import_wh: float,
        energy_export_wh: float,
        peak_charge_power_w: float = 0.0,
        peak_discharge_power_w: float = 0.0,
    ) -> None:
        self._append(
            {
                "type": "stop",
                "session_id": sid,
                "t": _utc(),
                "reason": reason,
                "energy_import_wh": energy_import_wh,
                "energy_export_wh": energy_export_wh,
                "peak_charge_power_w": peak_charge_power_w,
                "peak_discharge_power_w": peak_discharge_power_w,
            }
        )
        self._last_progress.pop(sid, None)
        log.info(
            "record_session_stopped",
            session_id=sid,
            reason=reason,
            energy_import_wh=round(energy_import_wh, 3),
            energy_export_wh=round(energy_export_wh, 3),
        )

    # ------------------------------------------------------------------ reading
    def _lines(self) -> tuple[list[dict[str, Any]], int, bool]:
        """(records, length of the valid prefix in bytes, whether a torn tail exists)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0, False
        records: list[dict[str, Any]] = []
        good = 0
        for raw in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
            end = good + len(raw) + 1
            if end > len(data):  # last piece without its newline: torn
                break
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                log.warning("record_line_unreadable", offset=good)
                good = end
                continue
            if isinstance(obj, dict):
                records.append(obj)
            good = end
        return records, good, good < len(data)

    def sessions(self) -> list[SessionRecord]:
        """Every session in the journal, oldest first."""
        records, _, _ = self._lines()
        out: dict[str, SessionRecord] = {}
        for r in records:
            sid = r.get("session_id")
            kind = r.get("type")
            if not isinstance(sid, str):
                continue
            if kind == "start":
                out[sid] = SessionRecord(
                    sid, str(r.get("connector")), str(r.get("t")), extra=r.get("extra") or {}
                )
                continue
            s = out.get(sid)
            if s is None:
                continue
            if kind in ("progress", "stop"):
                s.energy_import_wh = float(r.get("energy_import_wh", s.energy_import_wh))
                s.energy_export_wh = float(r.get("energy_export_wh", s.energy_export_wh))
                s.peak_charge_power_w = float(r.get("peak_charge_power_w", s.peak_charge_power_w))
                s.peak_discharge_power_w = float(
                    r.get("peak_discharge_power_w", s.peak_discharge_power_w)
                )
            if kind == "fault":
                s.faults.append(str(r.get("reason")))
            if kind == "stop":
                s.stopped = str(r.get("t"))
                s.reason = str(r.get("reason"))
        return list(out.values())

    def recover(self) -> list[SessionRecord]:
        """After a crash: drop a torn tail, close open sessions as ``interrupted``."""
        _, good, torn = self._lines()
        if torn:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
            log.warning("record_torn_line_dropped", path=str(self.path), kept_bytes=good)
        closed = []
        for s in self.sessions():
            if s.open:
                self.stop(
                    s.session_id,
                    "interrupted",
                    s.energy_import_wh,
                    s.energy_export_wh,
                    s.peak_charge_power_w,
                    s.peak_discharge_power_w,
                )
                s.stopped, s.reason = _utc(), "interrupted"
                closed.append(s)
        return closed
