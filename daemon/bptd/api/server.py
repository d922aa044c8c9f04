"""A ZeroMQ ROUTER command socket that answers every request exactly once.

The owner registers :attr:`CommandServer.socket` in its own ``zmq.Poller`` and calls
:meth:`CommandServer.serve_pending` when it is readable, so requests are served in the
thread that owns the state (the control loop, or the simulator's main loop).
:meth:`CommandServer.serve_until` is the same loop for a thread of its own.

``ipc://`` endpoints get their directory created and the socket file its mode and group;
``tcp://`` endpoints are bound only with CURVE keys (:mod:`bptd.api.security`).
"""

from __future__ import annotations

import os
import pathlib
import threading
from collections.abc import Callable
from typing import Any

import structlog
import zmq

from bptd.api.protocol import ApiError, ErrorCode, error_reply, ok_reply, split_request
from bptd.api.security import CurveConfig, CurveServerGuard, check_endpoint

log = structlog.get_logger(__name__)

Handler = Callable[[dict[str, Any]], Any]


def prepare_ipc(endpoint: str) -> pathlib.Path | None:
    """Create the directory of an ``ipc://`` endpoint; return the socket path."""
    if not endpoint.startswith("ipc://"):
        return None
    path = pathlib.Path(endpoint[len("ipc://") :])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def secure_ipc(path: pathlib.Path | None, mode: int = 0o660, group: str = "") -> None:
    """Give the socket file of an ``ipc://`` endpoint its mode and (when named) group."""
    if path is None or not path.exists():
        return
    os.chmod(path, mode)
    if group:
        import grp

        os.chown(path, -1, grp.getgrnam(group).gr_gid)


def bind_server_socket(
    context: zmq.Context[Any],
    kind: int,
    endpoint: str,
    curve: CurveConfig | None,
    mode: int,
    group: str,
    options: tuple[tuple[int, int], ...],
) -> tuple[zmq.Socket[bytes], CurveServerGuard | None, str]:
    """A socket of ``kind`` bound at ``endpoint``: options set, CURVE applied when the
    endpoint needs it (a :class:`ConfigError` before anything is opened when keys are
    missing), an ipc file given ``mode`` and ``group``. Returns the socket, its CURVE guard
    and what was bound (``tcp://127.0.0.1:*`` becomes ``tcp://127.0.0.1:<port>``)."""
    keys = check_endpoint(endpoint, curve)
    sock: zmq.Socket[bytes] = context.socket(kind)
    guard: CurveServerGuard | None = None
    try:
        for option, value in options:
            sock.setsockopt(option, value)
        if keys is not None:
            guard = CurveServerGuard(context, keys)
            guard.apply(sock)
        ipc = prepare_ipc(endpoint)
        sock.bind(endpoint)
        secure_ipc(ipc, mode, group)
        return sock, guard, sock.getsockopt_string(zmq.LAST_ENDPOINT)
    except BaseException:
        sock.close(0)
        if guard is not None:
            guard.close()
        raise


class CommandServer:
    """ROUTER socket bound at ``endpoint``; ``handler(request) -> result`` or raises ApiError.

    ``curve`` is required for ``tcp://`` endpoints (ConfigError without it) and ignored for
    ``ipc://`` ones; with ``curve.client_keys`` only those clients may connect.
    """

    def __init__(
        self,
        endpoint: str,
        handler: Handler,
        context: zmq.Context[Any] | None = None,
        mode: int = 0o660,
        group: str = "",
        curve: CurveConfig | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.handler = handler
        self._ctx = context or zmq.Context.instance()
        self.socket, self._guard, self.bound_endpoint = bind_server_socket(
            self._ctx, zmq.ROUTER, endpoint, curve, mode, group,
            ((zmq.LINGER, 0), (zmq.ROUTER_MANDATORY, 0), (zmq.MAXMSGSIZE, 1 << 20)),
        )  # fmt: skip
        self.served = 0
        log.debug("api_socket_bound", endpoint=endpoint, curve=self._guard is not None)

    @property
    def curve(self) -> bool:
        """True when the socket speaks CURVE."""
        return self._guard is not None

    def serve_pending(self, limit: int = 100) -> int:
        """Answer up to ``limit`` waiting requests without blocking; return how many."""
        n = 0
        while n < limit:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            self._answer(frames)
        self.served += n
        return n

    def _answer(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return  # no routing identity: nobody to answer
        ident = frames[0]
        # REQ sends [ident, b"", body]; DEALER may send [ident, body] or [ident, b"", body]
        if len(frames) >= 3 and frames[1] == b"":
            envelope, body_frames = [ident, b""], frames[2:]
        else:
            envelope, body_frames = [ident], frames[1:]
        if len(body_frames) != 1:
            reply = error_reply(
                None, ErrorCode.BAD_REQUEST, f"expected one JSON frame, got {len(body_frames)}"
            )
        else:
            try:
                reply = self._reply_for(body_frames[0])
            except Exception as exc:  # last resort: the request is answered, the loop lives
                log.exception("api_reply_failed")
                reply = error_reply(
                    None, ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}"
                )
        try:
            self.socket.send_multipart([*envelope, reply], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.warning("api_reply_dropped", error=str(exc))

    def _reply_for(self, body: bytes) -> bytes:
        rid, request, error = split_request(body)
        if error is not None or request is None:
            return error or error_reply(rid, ErrorCode.BAD_REQUEST, "empty request")
        try:
            return ok_reply(rid, self.handler(request))
        except ApiError as exc:
            return error_reply(rid, exc.code, exc.message)
        except Exception as exc:
            log.exception("api_internal_error", cmd=request.get("cmd"))
            return error_reply(rid, ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}")

    def serve_until(self, stop: threading.Event, poll_ms: int = 50) -> None:
        """Answer requests in the calling thread until ``stop`` is set."""
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not stop.is_set():
            if poller.poll(poll_ms):
                self.serve_pending()

    def close(self) -> None:
        """Close the socket and leave the CURVE authenticator (idempotent)."""
        if not self.socket.closed:
            self.socket.close(0)
        if self._guard is not None:
            self._guard.close()

    def __enter__(self) -> CommandServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
