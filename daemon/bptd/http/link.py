"""bptd-http's side of bptd's API: commands through :class:`AsyncClient`, telemetry through
a :class:`Subscriber` read in a thread; keeps the latest message of every topic, a short
history of each connector's measurements for the plots, and fans messages out to the
event-stream listeners."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from bptd.api.client import ApiError, AsyncClient, Subscriber

log = structlog.get_logger("bptd.http")

QUEUE_SIZE = 2000


def topic_matches(topic: str, prefixes: Iterable[str]) -> bool:
    """ZeroMQ-like topic selection: ``connector`` takes ``connector.ccs``; ``""`` takes all."""
    for p in prefixes:
        if not p or topic == p or topic.startswith(p if p.endswith(".") else p + "."):
            return True
    return False


@dataclass(eq=False)
class Listener:
    prefixes: tuple[str, ...]
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )
    dropped: int = 0


class Link:
    def __init__(
        self,
        control: str,
        telemetry: str,
        server_key: str | None = None,
        history_s: float = 600.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.control = control
        self.telemetry = telemetry
        self.server_key = server_key
        self.history_s = history_s
        self.client = AsyncClient(control, timeout_s=timeout_s, server_key=server_key)
        self.latest: dict[str, dict[str, Any]] = {}
        self.history: dict[str, deque[list[float | None]]] = {}
        self.listeners: set[Listener] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    async def call(self, cmd: str, **args: Any) -> Any:
        return await self.command(cmd, args)

    async def command(self, cmd: str, args: dict[str, Any]) -> Any:
        """``cmd`` with ``args`` (any names: they are not keyword arguments here) -> result,
        or :class:`ApiError`. An ``id`` in ``args`` is the request id, as on the socket."""
        try:
            reply = await self.client.request({**args, "cmd": cmd})
        except ValueError:  # a request with this id is already waiting for its reply
            raise ApiError("wrong_state", "a request with this id is in flight; retry") from None
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        raise ApiError(str(err.get("code", "internal")), str(err.get("message", "no message")))

    async def wait_ready(self, stopping: asyncio.Event, period_s: float = 1.0) -> bool:
        """Ping until bptd answers (True) or ``stopping`` is set (False, at once)."""
        warned = False
        stop = asyncio.ensure_future(stopping.wait())
        try:
            while True:
                ping = asyncio.ensure_future(self.call("ping"))
                await asyncio.wait({ping, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop.done():
                    ping.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ApiError):
                        await ping
                    return False
                try:
                    ping.result()
                    return True
                except ApiError as exc:
                    if not warned:
                        log.warning("http_waiting_for_bptd", endpoint=self.control, error=str(exc))
                        warned = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stop), period_s)
                if stop.done():
                    return False
        finally:
            stop.cancel()

    # ------------------------------------------------------------------ telemetry
    def start_telemetry(self) -> None:
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                with Subscriber(self.telemetry, ("",), server_key=self.server_key) as sub:
                    while not self._stop.is_set():
                        msg = sub.recv(timeout_s=0.2)
                        if msg is not None:
                            try:
                                loop.call_soon_threadsafe(self.on_message, *msg)
                            except RuntimeError:  # the loop is closed: shutting down
                                return
            except Exception:
                log.exception("http_telemetry_thread_failed")

        self._thread = threading.Thread(target=run, name="bptd-http-telemetry", daemon=True)
        self._thread.start()

    def on_message(self, topic: str, payload: dict[str, Any]) -> None:
        if topic != "event":
            self.latest[topic] = payload
        if topic.startswith("connector."):
            self._remember(topic[len("connector.") :], payload)
        for listener in list(self.listeners):
            try:
                listener.queue.put_nowait((topic, payload))
            except asyncio.QueueFull:
                listener.dropped += 1

    def _remember(self, name: str, p: dict[str, Any]) -> None:
        mono = p.get("mono")
        if not isinstance(mono, int | float):
            return
        points = self.history.setdefault(name, deque())
        points.append(
            [mono, p.get("power_w"), p.get("voltage_v"), p.get("current_a"), p.get("setpoint_w")]
        )
        while points and mono - float(points[0][0] or 0.0) > self.history_s:
            points.popleft()

    def points(self, name: str, seconds: float) -> list[list[float | None]]:
        points = self.history.get(name)
        if not points:
            return []
        last = points[-1][0] or 0.0
        return [p for p in points if (p[0] or 0.0) >= last - seconds]

    def listen(self, prefixes: tuple[str, ...]) -> Listener:
        listener = Listener(prefixes)
        self.listeners.add(listener)
        return listener

    def unlisten(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def close_listeners(self) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                listener.queue.put_nowait(None)

    async def aclose(self) -> None:
        self._stop.set()
        self.close_listeners()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)
        await self.client.aclose()
