"""A scripted CSMS for the tests: the ``ocpp`` package's own ChargePoint classes in the CSMS
role on a websockets server on 127.0.0.1, schema validation on, in a thread of its own.

Every CALL the station sends is recorded (action, payload as on the wire, message id, and
whether it passed the schema); tests wait on the record and make calls to the station.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.exceptions import OCPPError
from ocpp.routing import on

SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}
MODULES = {"1.6": "ocpp.v16", "2.0.1": "ocpp.v201", "2.1": "ocpp.v21"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Received:
    action: str
    payload: dict[str, Any]
    unique_id: str
    valid: bool
    connection: int
    t: float


def _peer_class(version: str, csms: Csms) -> type:
    mod = importlib.import_module(MODULES[version])
    result = importlib.import_module(MODULES[version] + ".call_result")
    tx_ids = itertools.count(1001)

    class Peer(mod.ChargePoint):  # type: ignore[misc, name-defined]
        async def _handle_call(self, msg: Any) -> Any:
            rec = Received(
                msg.action, msg.payload, msg.unique_id, True, csms.connections, time.time()
            )
            try:
                return await super()._handle_call(msg)
            except OCPPError:
                rec.valid = False
                raise
            finally:
                csms._record(rec)

        @on("BootNotification")
        async def on_boot(self, **_: Any) -> Any:
            return result.BootNotification(
                current_time=now(), interval=csms.heartbeat_s, status=csms.boot_status
            )

        @on("Heartbeat")
        async def on_heartbeat(self, **_: Any) -> Any:
            return result.Heartbeat(current_time=now())

        @on("StatusNotification")
        async def on_status(self, **_: Any) -> Any:
            return result.StatusNotification()

        @on("MeterValues")
        async def on_meter_values(self, **_: Any) -> Any:
            return result.MeterValues()

        @on("FirmwareStatusNotification")
        async def on_firmware_status(self, **_: Any) -> Any:
            return result.FirmwareStatusNotification()

        if version == "1.6":

            @on("Authorize")
            async def on_authorize(self, **_: Any) -> Any:
                return result.Authorize(id_tag_info={"status": "Accepted"})

            @on("StartTransaction")
            async def on_start_transaction(self, **_: Any) -> Any:
                return result.StartTransaction(
                    transaction_id=next(tx_ids), id_tag_info={"status": "Accepted"}
                )

            @on("StopTransaction")
            async def on_stop_transaction(self, **_: Any) -> Any:
                return result.StopTransaction()

            @on("DiagnosticsStatusNotification")
            async def on_diagnostics_status(self, **_: Any) -> Any:
                return result.DiagnosticsStatusNotification()

        else:

            @on("Authorize")
            async def on_authorize(self, **_: Any) -> Any:
                return result.Authorize(id_token_info={"status": "Accepted"})

            @on("TransactionEvent")
            async def on_transaction_event(self, **_: Any) -> Any:
                return result.TransactionEvent()

            @on("NotifyEVChargingNeeds")
            async def on_ev_charging_needs(self, **_: Any) -> Any:
                return result.NotifyEVChargingNeeds(status="Accepted")

            @on("NotifyReport")
            async def on_notify_report(self, **_: Any) -> Any:
                return result.NotifyReport()

            @on("LogStatusNotification")
            async def on_log_status(self, **_: Any) -> Any:
                return result.LogStatusNotification()

    return Peer


class Csms:
    """One CSMS of ``version`` for one station; ``port`` 0 picks a free port (kept across
    :meth:`stop_server` / :meth:`start_server`)."""

    def __init__(
        self, version: str, port: int = 0, heartbeat_s: int = 300, boot_status: str = "Accepted"
    ) -> None:
        self.version = version
        self.port = port
        self.heartbeat_s = heartbeat_s
        self.boot_status = boot_status
        self.messages: list[Received] = []
        self.connections = 0
        self._cond = threading.Condition()
        self._peer_cls = _peer_class(version, self)
        self._call_mod = importlib.import_module(MODULES[version] + ".call")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="csms", daemon=True)
        self._server: Any = None
        self.peer: Any = None
        self.path = ""

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Csms:
        self._thread.start()
        self.start_server()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start_server(self) -> None:
        async def start() -> None:
            self._server = await websockets.serve(
                self._handler, "127.0.0.1", self.port, subprotocols=[SUBPROTOCOLS[self.version]]
            )
            self.port = self._server.sockets[0].getsockname()[1]

        self._run(start())

    def stop_server(self) -> None:
        """The CSMS goes away: the server closes and every connection with it."""

        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()
            self.peer = None

        self._run(stop())

    def close(self) -> None:
        if self._thread.is_alive():
            if self._server is not None:
                self.stop_server()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def _handler(self, ws: Any) -> None:
        if ws.subprotocol is None:
            await ws.close()
            return
        self.connections += 1
        self.path = ws.request.path
        peer = self._peer_cls(ws.request.path.rsplit("/", 1)[-1], ws)
        self.peer = peer
        with self._cond:
            self._cond.notify_all()
        try:
            await peer.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.peer is peer:
                self.peer = None

    # ------------------------------------------------------------------ record
    def _record(self, rec: Received) -> None:
        with self._cond:
            self.messages.append(rec)
            self._cond.notify_all()

    def wait(
        self,
        action: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
        timeout: float = 20.0,
        after: int = 0,
    ) -> Received:
        """The first ``action`` message (from index ``after`` on) whose payload satisfies
        ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for rec in self.messages[after:]:
                    if rec.action == action and predicate(rec.payload):
                        return rec
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.action, m.payload) for m in self.messages[after:]][-8:]
                    raise AssertionError(f"no {action} as wanted in {timeout} s; last: {seen}")
                self._cond.wait(remaining)

    def wait_connected(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.peer is None:
                remaining = deadline - time.monotonic()
                assert remaining > 0, "the station did not connect"
                self._cond.wait(remaining)

    def of(self, action: str, after: int = 0) -> list[Received]:
        with self._cond:
            return [m for m in self.messages[after:] if m.action == action]

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    # ------------------------------------------------------------------ calls
    def call(self, action: str, timeout: float = 30.0, **payload: Any) -> Any:
        """A CALL to the station (snake_case payload); the result, or OCPPError for a
        CALLERROR."""
        self.wait_connected()
        request = getattr(self._call_mod, action)(**payload)

        async def go() -> Any:
            return await self.peer.call(request, suppress=False)

        return self._run(go(), timeout)
