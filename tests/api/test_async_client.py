"""AsyncClient: concurrent calls matched by id, against real ZeroMQ peers."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq

from bptd.api.client import AsyncClient, Client
from bptd.api.protocol import ApiError

from .conftest import serving


def test_concurrent_calls_each_get_their_own_reply(ctx: zmq.Context[Any], ipc_dir: Path) -> None:
    ep = f"ipc://{ipc_dir}/control.sock"

    async def run() -> tuple[list[Any], str]:
        async with AsyncClient(ep, 5.0, ctx) as c:
            results = await asyncio.gather(*(c.call("echo", n=i) for i in range(50)))
            with pytest.raises(ApiError) as err:
                await c.call("fail")
            return list(results), str(err.value.code)

    with serving(ep, context=ctx):
        results, code = asyncio.run(run())
    assert results == [{"n": i} for i in range(50)]
    assert code == "wrong_state"


@contextmanager
def reversing_peer(ctx: zmq.Context[Any], ep: str, batch: int) -> Iterator[threading.Event]:
    """A ROUTER that collects ``batch`` requests and answers them last first."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(ep)
    stop = threading.Event()

    def run() -> None:
        pending: list[list[bytes]] = []
        while not stop.is_set():
            if not sock.poll(50):
                continue
            pending.append(sock.recv_multipart())
            if len(pending) == batch:
                for ident, empty, body in reversed(pending):
                    request = json.loads(body)
                    reply = {"id": request["id"], "ok": True, "result": request["n"]}
                    sock.send_multipart([ident, empty, json.dumps(reply).encode()])
                pending.clear()

    thread = threading.Thread(target=run, name="reversing-peer")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(5.0)
        sock.close(0)


def test_replies_out_of_order_reach_their_callers(ctx: zmq.Context[Any], ipc_dir: Path) -> None:
    ep = f"ipc://{ipc_dir}/reverse.sock"

    async def run() -> list[Any]:
        async with AsyncClient(ep, 5.0, ctx) as c:
            return list(await asyncio.gather(*(c.call("n", n=i) for i in range(8))))

    with reversing_peer(ctx, ep, batch=8):
        assert asyncio.run(run()) == list(range(8))


def test_a_call_without_reply_times_out_and_its_late_reply_is_dropped(
    ctx: zmq.Context[Any], ipc_dir: Path
) -> None:
    ep = f"ipc://{ipc_dir}/control.sock"

    async def run() -> tuple[str, Any, int]:
        async with AsyncClient(ep, 0.2, ctx) as c:
            with pytest.raises(ApiError) as err:
                await c.call("ping")  # nobody there yet: the request waits in the socket
            with serving(ep, context=ctx):
                c.timeout_s = 5.0
                result = await c.call("echo", later=True)
                return str(err.value.code), result, c.late_replies

    code, result, late = asyncio.run(run())
    assert code == "timeout"
    assert result == {"later": True}
    assert late == 1  # the ping's reply came after all, and nobody took it


def test_closed_clients_refuse_calls(ctx: zmq.Context[Any], ipc_dir: Path) -> None:
    ep = f"ipc://{ipc_dir}/control.sock"

    async def run() -> None:
        c = AsyncClient(ep, 1.0, ctx)
        await c.aclose()
        with pytest.raises(RuntimeError):
            await c.call("ping")

    asyncio.run(run())
    c = Client(ep, 1.0, ctx)
    c.close()
    with pytest.raises(RuntimeError):
        c.call("ping")
