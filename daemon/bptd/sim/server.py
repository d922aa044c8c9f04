"""``bptd sim``: the virtual station as its own process, with a ZeroMQ ``sim`` socket.

Requests use the daemon's format: ``{"cmd": "sim", "action": "plug", "connector": "ccs",
"vehicle": "bpt"}``; ``ping`` and ``status`` are answered too.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
import zmq

from bptd.api.protocol import ApiError, ErrorCode
from bptd.api.server import CommandServer
from bptd.sim.station import SimActionError, VirtualStation

log = structlog.get_logger(__name__)


def handle_sim(station: VirtualStation, request: dict[str, Any]) -> Any:
    """Run one ``sim`` request against ``station``; raise ApiError on bad input."""
    args = {k: v for k, v in request.items() if k not in ("cmd", "id", "action")}
    action = request.get("action")
    if not isinstance(action, str):
        raise ApiError(ErrorCode.INVALID_ARGUMENT, "sim needs a string 'action'")
    try:
        return station.action(action, **args)
    except SimActionError as exc:
        raise ApiError(exc.code, str(exc)) from None


def serve(station: VirtualStation, endpoint: str, stop: threading.Event) -> None:
    """Serve the sim socket until ``stop`` is set."""

    def handler(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "ping":
            return {"pong": True, "role": "sim"}
        if cmd == "status":
            return station.snapshot()
        if cmd == "sim":
            return handle_sim(station, request)
        raise ApiError(
            ErrorCode.UNKNOWN_COMMAND,
            f"unknown command {cmd!r}; this socket takes 'sim', 'status' and 'ping'",
        )

    server = CommandServer(endpoint, handler)
    poller = zmq.Poller()
    poller.register(server.socket, zmq.POLLIN)
    log.info("sim_socket_ready", endpoint=endpoint)
    try:
        while not stop.is_set():
            if poller.poll(100):
                server.serve_pending()
    finally:
        server.close()
