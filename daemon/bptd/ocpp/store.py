"""The frontend's own state file: meter registers, running transactions, the device model
values the CSMS set, the installed charging profiles, what was applied to bptd.

One JSON document, replaced atomically (write a temporary file, fsync, rename, fsync the
directory): after a crash it is the last complete version, never a torn one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class StateLocked(RuntimeError):
    """Another bptd-ocpp runs on the same state directory."""


class StateStore:
    """``<dir>/state.json`` plus a lock file that keeps a second instance out."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "state.json"
        self._lock = open(self.dir / "lock", "a+")  # noqa: SIM115 (held for the lifetime)
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            raise StateLocked(f"{self.dir} is in use by another bptd-ocpp") from exc
        self.data: dict[str, Any] = {}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                log.error("ocpp_state_unreadable", path=str(self.path))
                bad = self.path.with_suffix(".bad")
                os.replace(self.path, bad)
                self.data = {}
        self.data.setdefault("version", 1)

    def section(self, name: str, default: Any) -> Any:
        return self.data.setdefault(name, default)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, separators=(",", ":"), default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        if not self._lock.closed:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
