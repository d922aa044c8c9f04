"""The clients every frontend and script uses to talk to bptd (or to ``bptd sim``).

>>> with Client("ipc:///run/bptd/control.sock") as c:   # doctest: +SKIP
...     c.call("status")

>>> async with AsyncClient("ipc:///run/bptd/control.sock") as c:   # doctest: +SKIP
...     await asyncio.gather(c.call("status"), c.call("ping"))

>>> with Subscriber("ipc:///run/bptd/telemetry.sock", ("event",)) as sub:   # doctest: +SKIP
...     sub.recv(timeout_s=1.0)

Requests go through a DEALER socket; replies are matched by ``id``. A refused request
raises :class:`bptd.api.protocol.ApiError` carrying the error code; no reply in time raises
it with the code ``timeout``. For a ``tcp://`` endpoint pass the server's CURVE public key
(``server_key``), and ``client_keys=(public, secret)`` when the server has an allow-list;
without client keys an ephemeral keypair is used.

Frontends import only this module: it re-exports :class:`Subscriber` and :class:`ApiError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import structlog
import zmq
import zmq.asyncio

from bptd.api.protocol import ApiError, ErrorCode
from bptd.api.security import apply_client_keys, ephemeral_keypair
from bptd.api.telemetry import Subscriber

__all__ = ["ApiError", "AsyncClient", "Client", "ErrorCode", "Subscriber", "telemetry_endpoint"]

log = structlog.get_logger(__name__)


def telemetry_endpoint(control: str) -> str:
    """The telemetry socket next to a command socket (``.../control.sock`` ->
    ``.../telemetry.sock``); for tcp the next port."""
    if control.startswith("ipc://") and control.endswith("control.sock"):
        return control[: -len("control.sock")] + "telemetry.sock"
    if control.startswith("tcp://"):
        host, _, port = control.rpartition(":")
        if port.isdigit():
            return f"{host}:{int(port) + 1}"
    raise ValueError(f"cannot derive a telemetry endpoint from {control!r}: give --telemetry")


DEFAULT_TIMEOUT_S = 5.0


def _result(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    err = reply.get("error") or {}
    raise ApiError(err.get("code", "internal"), err.get("message", "no message"))


def _id_key(rid: Any) -> str:
    """Replies echo the id through JSON: compare ids by their JSON text."""
    return json.dumps(rid, sort_keys=True, default=str)


class Client:
    """Synchronous client of a bptd command socket (one thread at a time)."""

    DEFAULT_TIMEOUT_S = DEFAULT_TIMEOUT_S

    def __init__(
        self,
        endpoint: str,
        timeout_s: float | None = None,
        context: zmq.Context[Any] | None = None,
        server_key: str | None = None,
        client_keys: tuple[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout_s = self.DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        self._ctx = context or zmq.Context.instance()
        self._server_key = server_key
        # one identity for the client's lifetime, also across reconnects after a timeout
        self._client_keys = client_keys or (ephemeral_keypair() if server_key else None)
        self._sock: zmq.Socket[bytes] | None = None
        self._ids = itertools.count(1)
        self._connect()

    def _connect(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            if self._server_key:
                apply_client_keys(sock, self._server_key, self._client_keys)
            sock.connect(self.endpoint)
        except BaseException:
            sock.close(0)
            raise
        self._sock = sock

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Send one raw request object and return the raw reply object."""
        if self._sock is None:
            raise RuntimeError("client is closed")
        rid = obj.setdefault("id", next(self._ids))
        key = _id_key(rid)
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
            try:
                reply = json.loads(frames[-1])
            except ValueError:
                continue
            if isinstance(reply, dict) and _id_key(reply.get("id")) == key:
                return reply

    def call(self, cmd: str, **args: Any) -> Any:
        """``call("setpoint", connector="ccs", power_w=5000)`` -> result, or raise ApiError."""
        return _result(self.request({"cmd": cmd, **args}))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """asyncio client of a bptd command socket; many calls may be in flight at once.

    One reader task (started by the first call, on the running loop) takes every reply
    and hands it to the call waiting for its id; a reply nobody waits for any more (its
    call timed out) is dropped. Use the client from one event loop.
    """

    DEFAULT_TIMEOUT_S = DEFAULT_TIMEOUT_S

    def __init__(
        self,
        endpoint: str,
        timeout_s: float | None = None,
        context: zmq.Context[Any] | None = None,
        server_key: str | None = None,
        client_keys: tuple[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout_s = self.DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        if context is None:
            self._ctx: zmq.asyncio.Context = zmq.asyncio.Context.instance()
        elif isinstance(context, zmq.asyncio.Context):
            self._ctx = context
        else:
            self._ctx = zmq.asyncio.Context.shadow(context.underlying)
        self._sock: zmq.asyncio.Socket | None = self._ctx.socket(zmq.DEALER)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            if server_key:
                apply_client_keys(self._sock, server_key, client_keys)
            self._sock.connect(endpoint)
        except BaseException:
            self._sock.close(0)
            raise
        self._ids = itertools.count(1)
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.late_replies = 0

    async def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Send one raw request object and return the raw reply object."""
        if self._sock is None:
            raise RuntimeError("client is closed")
        rid = obj.setdefault("id", next(self._ids))
        key = _id_key(rid)
        if key in self._waiters:
            raise ValueError(f"a request with id {rid!r} is already waiting for its reply")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiters[key] = future
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read(), name=f"bptd-client {self.endpoint}")
        try:
            await self._sock.send_multipart([b"", json.dumps(obj).encode()])
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise ApiError(
                ErrorCode.TIMEOUT, f"no reply from {self.endpoint} within {self.timeout_s} s"
            ) from None
        finally:
            self._waiters.pop(key, None)

    async def call(self, cmd: str, **args: Any) -> Any:
        """``await call("setpoint", connector="ccs", power_w=5000)`` -> result, or ApiError."""
        return _result(await self.request({"cmd": cmd, **args}))

    async def _read(self) -> None:
        sock = self._sock
        try:
            while sock is not None and not sock.closed:
                frames = await sock.recv_multipart()
                self._deliver(frames[-1])
        except zmq.ZMQError as exc:  # the socket went away under the reader
            self._fail_waiters(ApiError(ErrorCode.TIMEOUT, f"connection lost: {exc}"))

    def _deliver(self, body: bytes) -> None:
        try:
            reply = json.loads(body)
        except ValueError:
            log.warning("api_client_bad_reply", endpoint=self.endpoint)
            return
        if not isinstance(reply, dict):
            return
        future = self._waiters.get(_id_key(reply.get("id")))
        if future is None or future.done():
            self.late_replies += 1
            return
        future.set_result(reply)

    def _fail_waiters(self, error: ApiError) -> None:
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        """Close the socket; calls still waiting fail with ApiError(timeout)."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        self._fail_waiters(ApiError(ErrorCode.TIMEOUT, "client closed"))
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    async def aclose(self) -> None:
        """:meth:`close`, then wait until the reader task has ended."""
        reader = self._reader
        self.close()
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._reader = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
