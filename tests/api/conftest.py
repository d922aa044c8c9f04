"""Fixtures of the API tests: a private ZeroMQ context, short ipc paths, served sockets."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq

from bptd.api.protocol import ApiError, ErrorCode
from bptd.api.security import CurveConfig
from bptd.api.server import CommandServer


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    """A context of the test's own; teardown fails when a socket was left open."""
    context: zmq.Context[Any] = zmq.Context()
    yield context
    done = threading.Event()

    def term() -> None:
        context.term()
        done.set()

    t = threading.Thread(target=term, name="zmq-term", daemon=True)
    t.start()
    assert done.wait(5.0), "a ZeroMQ socket of the test was left open"


@pytest.fixture
def ipc_dir() -> Iterator[Path]:
    """A short directory for ipc sockets (socket paths are limited to ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="bptd-api-", dir="/tmp") as d:
        yield Path(d)


def echo_handler(request: dict[str, Any]) -> Any:
    """``ping``, ``echo`` (returns its arguments) and ``fail`` (refused)."""
    cmd = request["cmd"]
    if cmd == "ping":
        return {"pong": True}
    if cmd == "echo":
        return {k: v for k, v in request.items() if k not in ("cmd", "id")}
    if cmd == "fail":
        raise ApiError(ErrorCode.WRONG_STATE, "refused on purpose")
    raise ApiError(ErrorCode.UNKNOWN_COMMAND, f"unknown command {cmd!r}")


@contextmanager
def serving(
    endpoint: str,
    handler: Callable[[dict[str, Any]], Any] = echo_handler,
    context: zmq.Context[Any] | None = None,
    curve: CurveConfig | None = None,
) -> Iterator[CommandServer]:
    """A CommandServer answering in a thread of its own until the block ends."""
    server = CommandServer(endpoint, handler, context=context, curve=curve)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_until, args=(stop,), name="api-test-server")
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5.0)
        server.close()
        assert not thread.is_alive()
