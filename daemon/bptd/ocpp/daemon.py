"""The frontend's side of bptd's API: commands through :class:`AsyncClient`, telemetry
through a :class:`Subscriber` read in a thread and handed to the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import structlog

from bptd.api.client import ApiError, AsyncClient, Subscriber

log = structlog.get_logger(__name__)

TOPICS = ("connector", "event")


class DaemonLink:
    def __init__(
        self,
        control: str,
        telemetry: str,
        timeout_s: float = 5.0,
        server_key: str | None = None,
        client_keys: tuple[str, str] | None = None,
    ) -> None:
        self.control = control
        self.telemetry = telemetry
        self._keys = {"server_key": server_key, "client_keys": client_keys}
        self.client = AsyncClient(control, timeout_s=timeout_s, **self._keys)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    async def call(self, cmd: str, **args: Any) -> Any:
        return await self.client.call(cmd, **args)

    async def wait_ready(self, period_s: float = 1.0) -> dict[str, Any]:
        """Ping until bptd answers; its ping reply."""
        warned = False
        while True:
            try:
                return await self.call("ping")
            except ApiError as exc:
                if not warned:
                    log.warning("ocpp_waiting_for_bptd", endpoint=self.control, error=str(exc))
                    warned = True
                await asyncio.sleep(period_s)

    def start_telemetry(self, on_message: Callable[[str, dict[str, Any]], None]) -> None:
        """Read ``connector.*`` and ``event`` in a thread; ``on_message(topic, payload)`` runs
        in the calling event loop."""
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                with Subscriber(self.telemetry, TOPICS, **self._keys) as sub:
                    while not self._stop.is_set():
                        msg = sub.recv(timeout_s=0.2)
                        if msg is not None:
                            try:
                                loop.call_soon_threadsafe(on_message, *msg)
                            except RuntimeError:  # the loop is closed: we are shutting down
                                return
            except Exception:
                log.exception("ocpp_telemetry_thread_failed")

        self._thread = threading.Thread(target=run, name="bptd-ocpp-telemetry", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)
        await self.client.aclose()
