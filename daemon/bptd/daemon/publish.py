"""Telemetry off the control loop's thread.

The loop builds each payload (a consistent picture of its state at that tick) and stamps
it with ``mono`` and the wall time; a publisher thread does the JSON encoding and the
ZeroMQ send. The loop thread never encodes or waits on a socket, and a message is never
reordered: one queue, one sender.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import structlog

from bptd.api.telemetry import Publisher, utc_timestamp

log = structlog.get_logger("bptd.telemetry")

_STOP = ("", None)


class QueuedPublisher:
    """``publish(topic, payload)`` from the loop; a daemon thread sends through ``publisher``."""

    def __init__(self, publisher: Publisher, max_queue: int = 5000) -> None:
        self.publisher = publisher
        self._queue: queue.Queue[tuple[str, dict[str, Any] | None]] = queue.Queue(max_queue)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="bptd-telemetry", daemon=True)
        self._thread.start()

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        if "mono" not in payload:
            payload["mono"] = time.monotonic()
        if "t" not in payload:
            payload["t"] = time.time()  # formatted by the sender thread
        try:
            self._queue.put_nowait((topic, payload))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            topic, payload = self._queue.get()
            if payload is None:
                return
            t = payload.get("t")
            if isinstance(t, float):
                payload["t"] = utc_timestamp(t)
            try:
                self.publisher.publish(topic, payload)
            except Exception:  # never let telemetry take the loop down
                log.exception("telemetry_send_failed", topic=topic)

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what is queued, stop the thread, close the socket."""
        if self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout_s)
            except queue.Full:
                pass
            self._thread.join(timeout_s)
        self.publisher.close()
