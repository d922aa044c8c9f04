"""The client every frontend and script uses to talk to bptd (or to ``bptd sim``).

>>> with Client("ipc:///run/bptd/control.sock") as c:   # doctest: +SKIP
...     c.call("status")

Requests go through a DEALER socket; replies are matched by ``id``. A refused request
raises :class:`bptd.api.protocol.ApiError` carrying the error code.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import zmq

from bptd.api.protocol import ApiError, ErrorCode


class Client:
    """Synchronous client of a bptd command socket."""

    DEFAULT_TIMEOUT_S = 5.0

    def __init__(
        self, endpoint: str, timeout_s: float | None = None, context: zmq.Context[Any] | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout_s = self.DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket[bytes] | None = None
        self._ids = itertools.count(1)
        self._connect()

    def _connect(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self._sock = sock

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Send one raw request object and return the raw reply object."""
        if self._sock is None:
            raise RuntimeError("client is closed")
        rid = obj.setdefault("id", next(self._ids))
        self._sock.send_multipart([b"", json.dumps(obj).encode()])
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        remaining_ms = int(self.timeout_s * 1000)
        while True:
            if not poller.poll(remaining_ms):
                # the socket may hold a late reply: start afresh so ids never mix
                self._sock.close(0)
                self._connect()
                raise ApiError(
                    ErrorCode.TIMEOUT, f"no reply from {self.endpoint} within {self.timeout_s} s"
                )
            frames = self._sock.recv_multipart()
            reply = json.loads(frames[-1])
            if reply.get("id") == rid:
                return reply

    def call(self, cmd: str, **args: Any) -> Any:
        """``call("setpoint", connector="ccs", power_w=5000)`` -> result, or raise ApiError."""
        reply = self.request({"cmd": cmd, **args})
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        raise ApiError(err.get("code", "internal"), err.get("message", "no message"))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
