"""Telemetry: the daemon's PUB socket and the subscriber frontends and scripts use.

Every message is multipart ``[topic, json]``. Topics: ``station``, ``connector.<name>``,
``module.<n>``, ``event``. The JSON object carries ``t`` (wall time, ISO 8601 UTC with
milliseconds, ``Z``) and ``mono`` (``time.monotonic()`` of the publishing process), added
by :meth:`Publisher.publish` unless the payload has them; non-finite numbers are ``null``.

>>> with Subscriber(TELEMETRY, topics=("connector",)) as sub:  # doctest: +SKIP
...     for topic, msg in sub.messages(timeout_s=2.0):
...         print(topic, msg["power_w"])

A subscription names a topic and its dotted children: ``connector`` receives
``connector.ccs`` and ``connector.chademo``; ``module.1`` receives ``module.1`` but not
``module.12``; ``""`` receives everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import structlog
import zmq

from bptd.api.protocol import _clean
from bptd.api.security import CurveConfig, apply_client_keys
from bptd.api.server import bind_server_socket

log = structlog.get_logger(__name__)

TOPICS = ("station", "connector", "module", "event")
SNDHWM = 1000
RCVHWM = 10000


def utc_timestamp(now: float | None = None) -> str:
    """``2025-01-31T12:00:00.123Z`` for ``now`` (default: the present wall time)."""
    ms = int((time.time() if now is None else now) * 1000)
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def encode(payload: dict[str, Any]) -> bytes:
    """The JSON frame of ``payload`` with ``t`` and ``mono`` added when it has none."""
    body = dict(payload)
    if "t" not in body:
        body["t"] = utc_timestamp()
    if "mono" not in body:
        body["mono"] = time.monotonic()
    return json.dumps(_clean(body), allow_nan=False, default=str).encode()


def topic_matches(topic: str, subscriptions: Iterable[str]) -> bool:
    """True when ``topic`` is one of ``subscriptions`` or a dotted child of one."""
    for sub in subscriptions:
        if not sub or topic == sub or topic.startswith(sub if sub.endswith(".") else sub + "."):
            return True
    return False


class Publisher:
    """PUB socket bound at ``endpoint``; :meth:`publish` never blocks.

    Messages a slow subscriber cannot take are dropped by ZeroMQ (high-water mark
    ``SNDHWM``); a send refused outright is counted in :attr:`dropped`. Like every ZeroMQ
    socket, a publisher belongs to one thread.
    """

    def __init__(
        self,
        endpoint: str,
        context: zmq.Context[Any] | None = None,
        mode: int = 0o660,
        group: str = "",
        curve: CurveConfig | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._ctx = context or zmq.Context.instance()
        self.socket, self._guard, self.bound_endpoint = bind_server_socket(
            self._ctx, zmq.PUB, endpoint, curve, mode, group,
            ((zmq.SNDHWM, SNDHWM), (zmq.LINGER, 0)),
        )  # fmt: skip
        self.sent = 0
        self.dropped = 0
        log.debug("telemetry_socket_bound", endpoint=endpoint, curve=self._guard is not None)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Send ``[topic, json]`` now, or drop it (counted) when the socket cannot take it."""
        frames = [topic.encode(), encode(payload)]
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return
        except zmq.ZMQError as exc:
            self.dropped += 1
            log.warning("telemetry_dropped", topic=topic, error=str(exc))
            return
        self.sent += 1

    def close(self) -> None:
        """Close the socket and leave the CURVE authenticator (idempotent)."""
        if not self.socket.closed:
            self.socket.close(0)
        if self._guard is not None:
            self._guard.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber:
    """SUB socket connected to a telemetry endpoint.

    ``server_key`` (the publisher's CURVE public key, Z85 or a key file) is needed for
    ``tcp://`` endpoints; ``client_keys`` (public, secret) when the publisher has an
    allow-list, otherwise an ephemeral keypair is used.
    """

    def __init__(
        self,
        endpoint: str,
        topics: Iterable[str] = ("",),
        context: zmq.Context[Any] | None = None,
        server_key: str | None = None,
        client_keys: tuple[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.topics = tuple(topics) or ("",)
        self._ctx = context or zmq.Context.instance()
        self.socket: zmq.Socket[bytes] = self._ctx.socket(zmq.SUB)
        try:
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.RCVHWM, RCVHWM)
            if server_key:
                apply_client_keys(self.socket, server_key, client_keys)
            for t in self.topics:
                self.socket.setsockopt(zmq.SUBSCRIBE, t.encode())
            self.socket.connect(endpoint)
        except BaseException:
            self.socket.close(0)
            raise
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN)
        self.received = 0
        self.malformed = 0

    def recv(self, timeout_s: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next message ``(topic, payload)``, or None when none came within ``timeout_s``.

        ``timeout_s=None`` waits for ever; ``0`` only takes what is already there.
        Frames that are not ``[topic, JSON object]`` are skipped (and counted).
        """
        if self.socket.closed:
            raise RuntimeError("subscriber is closed")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if deadline is None:
                ready = self._poller.poll()
            else:
                remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
                ready = self._poller.poll(remaining_ms)
            if not ready:
                return None
            while True:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                message = self._decode(frames)
                if message is not None:
                    self.received += 1
                    return message
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _decode(self, frames: list[bytes]) -> tuple[str, dict[str, Any]] | None:
        try:
            topic = frames[0].decode()
            payload = json.loads(frames[1]) if len(frames) == 2 else None
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            self.malformed += 1
            return None
        if not topic_matches(topic, self.topics):
            return None  # a prefix match of ZeroMQ that is not a dotted child
        return topic, payload

    def messages(
        self, timeout_s: float | None = None, count: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield messages until none arrives within ``timeout_s`` or ``count`` were yielded."""
        n = 0
        while count is None or n < count:
            message = self.recv(timeout_s)
            if message is None:
                return
            n += 1
            yield message

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return self.messages()

    def close(self) -> None:
        if not self.socket.closed:
            self.socket.close(0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe(
    endpoint: str,
    topics: Iterable[str] = ("",),
    timeout_s: float | None = None,
    count: int | None = None,
    server_key: str | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Iterate telemetry from ``endpoint``; the socket closes when the iteration ends.

    >>> for topic, msg in subscribe(EP, ("event",), timeout_s=5):  # doctest: +SKIP
    ...     print(msg["kind"])
    """
    with Subscriber(endpoint, topics, server_key=server_key) as sub:
        yield from sub.messages(timeout_s, count)
