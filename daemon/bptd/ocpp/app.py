"""The version-independent core of bptd-ocpp.

:class:`Frontend` follows bptd's connectors through telemetry, runs the transactions, the
meter registers and sampling, the charging profiles (composited and applied to bptd's
limits as time passes), the offline queue, the connection to the CSMS with backoff, boot
and heartbeat, and the resets. The version adapters (:mod:`bptd.ocpp.v16`,
:mod:`bptd.ocpp.v2`) only turn its decisions into messages and the CSMS's calls into its
method calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import websockets
from ocpp.exceptions import OCPPError, ValidationError

from bptd.api.client import ApiError
from bptd.ocpp import profiles as prof
from bptd.ocpp.adapter import Adapter, Identity, Transaction
from bptd.ocpp.daemon import DaemonLink
from bptd.ocpp.devmodel import DeviceModel
from bptd.ocpp.mapping import (
    ENERGY_STATUSES,
    TX_OVER,
    Reading,
    charging_state,
    readings,
    status16,
    stop_reason,
)
from bptd.ocpp.queue import OfflineQueue, wait_event
from bptd.ocpp.store import StateStore

log = structlog.get_logger(__name__)

VERSIONS = ("1.6", "2.0.1", "2.1")
ACTIVE = frozenset({"authorized", "allocated", "cable_check", "precharge", "energy_transfer"})
#: a Charging -> Suspended* change is reported once it lasted this long (a direction change
#: ramps through zero in well under a second)
SUSPEND_DEBOUNCE_S = 2.0
SAMPLER_PERIOD_S = 0.25
REGISTERS_SAVE_S = 10.0

#: 2.1 operation mode -> (bidirectional, control) of bptd's set_mode
MODES = {
    "ChargingOnly": (False, "scheduled"),
    "CentralSetpoint": (True, "dynamic"),
    "ExternalSetpoint": (True, "dynamic"),
    "Idle": (False, "dynamic"),
}


class Disconnected(Exception):
    """The connection to the CSMS closed while a call waited for its answer."""


@dataclass
class Options:
    control: str
    telemetry: str
    csms_url: str
    station_id: str
    version: str
    state_dir: str = "/var/lib/bptd-ocpp"
    password: str | None = None
    server_key: str | None = None
    client_keys: tuple[str, str] | None = None
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    response_timeout_s: float = 30.0
    reset_timeout_s: float = 20.0
    local_id_tag: str = "bptd-local"
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Conn:
    """One of bptd's connectors: OCPP connector ``index`` (1.6) / EVSE ``index`` (2.x)."""

    name: str
    index: int
    max_power_w: float = 0.0
    snap: dict[str, Any] = field(default_factory=dict)
    state: str | None = None
    event_mono: float = 0.0
    fault: str | None = None
    tx: Transaction | None = None
    starting: bool = False
    inoperative: bool = False
    pending_inoperative: bool = False
    status: str | None = None  # 1.6 words, debounced
    candidate: str | None = None
    candidate_since: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Registers:
    """Monotonic energy registers per connector: what finished sessions delivered (base)
    plus the present session's counters from bptd."""

    def __init__(self, data: dict[str, dict[str, Any]]) -> None:
        self.data = data

    def _entry(self, name: str) -> dict[str, Any]:
        return self.data.setdefault(
            name,
            {"base_import_wh": 0.0, "base_export_wh": 0.0, "session_id": None,
             "session_import_wh": 0.0, "session_export_wh": 0.0},
        )  # fmt: skip

    def update(self, name: str, snap: dict[str, Any]) -> None:
        e = self._entry(name)
        sid = snap.get("session_id")
        imp = float(snap.get("energy_import_wh") or 0.0)
        exp = float(snap.get("energy_export_wh") or 0.0)
        if sid != e["session_id"]:
            e["base_import_wh"] += e["session_import_wh"]
            e["base_export_wh"] += e["session_export_wh"]
            e["session_id"] = sid
            e["session_import_wh"] = e["session_export_wh"] = 0.0
        if sid is None:
            return
        e["session_import_wh"] = max(e["session_import_wh"], imp)
        e["session_export_wh"] = max(e["session_export_wh"], exp)

    def settle(self, name: str, session_id: str, import_wh: float, export_wh: float) -> None:
        """The final energy of a session seen last before a restart."""
        e = self._entry(name)
        if e["session_id"] == session_id:
            e["session_import_wh"] = max(e["session_import_wh"], import_wh)
            e["session_export_wh"] = max(e["session_export_wh"], export_wh)

    def value(self, name: str) -> tuple[float, float]:
        e = self._entry(name)
        return (
            e["base_import_wh"] + e["session_import_wh"],
            e["base_export_wh"] + e["session_export_wh"],
        )


class Frontend:
    def __init__(self, opts: Options) -> None:
        if opts.version not in VERSIONS:
            raise ValueError(f"OCPP version {opts.version!r}: one of {', '.join(VERSIONS)}")
        self.opts = opts
        self.version = opts.version
        self.v2x = opts.version == "2.1"
        self.store = StateStore(opts.state_dir)
        self.queue = OfflineQueue(Path(opts.state_dir) / "queue.jsonl")
        self.daemon = DaemonLink(
            opts.control, opts.telemetry, server_key=opts.server_key, client_keys=opts.client_keys
        )
        self.adapter: Adapter = _adapter(self)
        self.conns: list[Conn] = []
        self.by_name: dict[str, Conn] = {}
        self.devmodel: DeviceModel | None = None
        self.identity = Identity("bptd", "bptd", "", "")
        self.registers = Registers(self.store.section("registers", {}))
        self.profiles = prof.ProfileStore(
            [prof.Profile.from_dict(p) for p in self.store.section("profiles", [])]
        )
        self.applied: dict[str, dict[str, Any]] = self.store.section("applied", {})
        self._applied_at: dict[str, float] = {}  # monotonic time of our last set_limits
        self.watts_per_amp = 690.0
        self.station_max_w = 0.0
        self.config: dict[str, Any] = {}
        # connection
        self.cp: Any = None
        self._reader: asyncio.Task[Any] | None = None
        self.online = False
        self.boot_accepted = False
        self.boot_reason = "PowerUp"
        self.reported: dict[int, str] = {}
        self._ws: Any = None
        self._reconnect_now = False
        self.resetting = False
        # loop plumbing
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pulse_event: asyncio.Event | None = None
        self._status_event: asyncio.Event | None = None
        self._apply_event: asyncio.Event | None = None
        self._ready = False
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False
        self._registers_saved = 0.0

    # ================================================================== lifecycle
    async def run(self) -> None:
        """Run until :meth:`stop` (or cancellation)."""
        self._pulse_event = asyncio.Event()
        self._status_event = asyncio.Event()
        self._apply_event = asyncio.Event()
        self._stopping = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        try:
            # waiting for bptd may take long: a stop request ends it too
            setup = asyncio.ensure_future(self._setup())
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait([setup, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not setup.done():
                    setup.cancel()
                    await asyncio.gather(setup, return_exceptions=True)
            if setup.cancelled():
                return
            setup.result()
            workers = [
                self.spawn(self._sampler(), name="sampler"),
                self.spawn(self._applier(), name="applier"),
                self.spawn(self._connection_loop(), name="connection"),
            ]
            log.info(
                "ocpp_started",
                version=self.version,
                csms=self.opts.csms_url,
                station_id=self.opts.station_id,
                connectors=[c.name for c in self.conns],
                pending=len(self.queue),
            )
            await self._stopping.wait()
            for t in workers:
                t.cancel()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        """End :meth:`run` (also when called before it started)."""
        self._stop_requested = True
        if self._stopping is not None:
            self._stopping.set()

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5.0)
            if stuck:
                log.error("ocpp_tasks_did_not_stop", tasks=[t.get_name() for t in stuck])
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        with contextlib.suppress(Exception):
            self._save()
        await self.daemon.aclose()
        self.queue.close()
        self.store.close()
        log.info("ocpp_stopped")

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"bptd-ocpp {name}")
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("ocpp_task_failed", task=name, error=repr(t.exception()))

        task.add_done_callback(done)
        return task

    async def _setup(self) -> None:
        ping = await self.daemon.wait_ready()
        self.config = await self.daemon.call("config")
        station = self.config.get("station") or {}
        self.identity = Identity(
            vendor=str(station.get("vendor") or "bptd"),
            model=str(station.get("model") or "bptd"),
            serial=str(station.get("serial") or ""),
            firmware=f"bptd {ping.get('version', '')}".strip(),
        )
        ratings = self.config.get("module_ratings") or {}
        self.watts_per_amp = float(ratings.get("grid_voltage_ln_v") or 230.0) * float(
            ratings.get("phases") or 3
        )
        n_modules = len(self.config.get("modules") or []) or 1
        self.station_max_w = n_modules * float(ratings.get("max_charge_power_w") or 10000.0)
        inoperative = set(self.store.section("inoperative", []))
        for i, c in enumerate(self.config.get("connectors") or [], start=1):
            conn = Conn(
                c["name"],
                i,
                max_power_w=min(float(c.get("max_power_w") or 1e9), self.station_max_w),
                inoperative=c["name"] in inoperative,
            )
            self.conns.append(conn)
            self.by_name[conn.name] = conn
        self.devmodel = DeviceModel(
            self.version,
            self.store.section("variables", {}),
            self.opts.variables,
            computed={"number_of_connectors": len(self.conns)},
        )
        self.profiles.max_stack_level = int(self.devmodel.get("stack_level"))
        self.profiles.max_periods = int(self.devmodel.get("max_periods"))
        self.profiles.max_profiles = int(self.devmodel.get("max_profiles"))
        self.daemon.start_telemetry(self._on_telemetry)
        await self._recover()
        self._ready = True

    async def _recover(self) -> None:
        """Continue or end the transactions of a previous run; settle the registers."""
        status = await self.daemon.call("status")
        snaps = status.get("connectors") or {}
        records: list[dict[str, Any]] | None = None
        for conn in self.conns:
            snap = snaps.get(conn.name) or {}
            conn.snap = snap
            reg = self.registers.data.get(conn.name)
            if reg and reg.get("session_id") and reg["session_id"] != snap.get("session_id"):
                if records is None:
                    with contextlib.suppress(ApiError):
                        records = (await self.daemon.call("sessions", limit=50))["sessions"]
                for r in records or []:
                    if r.get("session_id") == reg["session_id"]:
                        self.registers.settle(
                            conn.name,
                            r["session_id"],
                            float(r.get("energy_import_wh") or 0.0),
                            float(r.get("energy_export_wh") or 0.0),
                        )
            self.registers.update(conn.name, snap)
        stored = self.store.section("transactions", {})
        for name, d in list(stored.items()):
            conn = self.by_name.get(name)
            if conn is None:
                continue
            tx = Transaction(**d)
            for item in self.queue.pending():  # seqNo never repeats, even after a crash
                info = item.payload.get("transaction_info") or {}
                if info.get("transaction_id") == tx.tx_id:
                    tx.seq = max(tx.seq, int(item.payload.get("seq_no", -1)) + 1)
            tx.last_sample = time.monotonic()
            conn.tx = tx
            snap = conn.snap
            if tx.session_id is not None and snap.get("session_id") == tx.session_id:
                # the same session: it goes on, or ends now with its own reason (below)
                log.info("ocpp_transaction_resumed", connector=name, transaction=tx.tx_id)
            else:
                log.info("ocpp_transaction_closed_after_restart", connector=name, tx=tx.tx_id)
                self._end_tx(conn, tx.stop_reason or "Reboot")
        for conn in self.conns:
            self._on_state(conn, str(conn.snap.get("state") or "idle"), "")
        self._save()

    # ================================================================== persistence
    def _save(self) -> None:
        self.store.data["transactions"] = {
            c.name: c.tx.to_dict() for c in self.conns if c.tx is not None
        }
        self.store.data["profiles"] = [p.to_dict() for p in self.profiles.profiles]
        self.store.data["inoperative"] = [c.name for c in self.conns if c.inoperative]
        self.store.save()
        self._registers_saved = time.monotonic()

    def profiles_changed(self) -> None:
        self._save()
        self.wake_applier()

    def wake_applier(self) -> None:
        if self._apply_event is not None:
            self._apply_event.set()

    # ================================================================== telemetry
    def _on_telemetry(self, topic: str, msg: dict[str, Any]) -> None:
        if not self._ready:
            return
        if topic == "event":
            conn = self.by_name.get(str(msg.get("connector")))
            if conn is None:
                return
            if msg.get("kind") == "fault":
                conn.fault = msg.get("reason")
            elif msg.get("kind") == "state_changed":
                conn.event_mono = max(conn.event_mono, float(msg.get("mono") or 0.0))
                self._on_state(conn, str(msg.get("to")), str(msg.get("text") or ""))
            return
        if not topic.startswith("connector."):
            return
        conn = self.by_name.get(topic.partition(".")[2])
        if conn is None or float(msg.get("mono") or 0.0) < conn.event_mono:
            return  # older than the last state change we know of
        conn.snap = msg
        if msg.get("fault"):
            conn.fault = msg.get("fault")
        tx = conn.tx
        if (
            tx is not None
            and tx.session_id is None
            and msg.get("session_id")
            and msg.get("state") in ACTIVE
        ):
            tx.session_id = msg["session_id"]  # bptd opened the session record at authorize
            self._save()
        self.registers.update(conn.name, msg)
        if msg.get("state") != conn.state:
            self._on_state(conn, str(msg.get("state")), "")
        else:
            self._refresh_status(conn)

    def _pulse(self) -> None:
        if self._pulse_event is not None:
            self._pulse_event.set()
            self._pulse_event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` holds (checked at every state change) or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            assert self._pulse_event is not None
            await wait_event(self._pulse_event, min(remaining, 1.0))
        return True

    def _on_state(self, conn: Conn, new: str, text: str) -> None:
        old = conn.state
        if new == old:
            return
        conn.state = new
        log.info("ocpp_connector_state", connector=conn.name, old=old, new=new)
        if conn.tx is not None and new in TX_OVER:
            tx = conn.tx
            reason = tx.stop_reason or stop_reason(new, text, conn.fault)
            self._end_tx(conn, reason)
        elif conn.tx is None and not conn.starting and new in ACTIVE:
            # a session authorized by another frontend or a script: still a transaction
            self._begin_tx(
                conn, self.opts.local_id_tag, "Local", remote=False, trigger="Authorized"
            )
        if new != "fault":
            conn.fault = None if new in ("idle", "connected") else conn.fault
        if conn.tx is None and conn.pending_inoperative:
            conn.pending_inoperative = False
            conn.inoperative = True
            self._save()
        self._refresh_status(conn)
        self._pulse()

    def _refresh_status(self, conn: Conn) -> None:
        if not conn.snap and conn.state is None:
            return
        raw = status16({**conn.snap, "state": conn.state}, conn.inoperative)
        now = time.monotonic()
        if (
            raw in ("SuspendedEV", "SuspendedEVSE")
            and raw != conn.status
            and conn.status in ENERGY_STATUSES | {"Preparing"}
        ):
            if conn.candidate != raw:
                conn.candidate, conn.candidate_since = raw, now
                return
            if now - conn.candidate_since < SUSPEND_DEBOUNCE_S:
                return
        conn.candidate = None
        if raw == conn.status:
            return
        conn.status = raw
        if self._status_event is not None:
            self._status_event.set()
        tx = conn.tx
        if tx is not None:
            cs = charging_state(raw)
            if cs != tx.charging_state:
                tx.charging_state = cs
                self._enqueue(self.adapter.tx_charging_state(tx, cs))

    # ================================================================== transactions
    def _readings(self, conn: Conn, key: str) -> list[Reading]:
        assert self.devmodel is not None
        imp, exp = self.registers.value(conn.name)
        return readings(conn.snap, imp, exp, self.devmodel.measurands(key))

    def _enqueue(self, messages: list[Any]) -> None:
        """Queue transaction messages: ``(action, payload)`` or ``(action, payload, meta)``."""
        for action, payload, *meta in messages:
            self.queue.put(action, payload, meta[0] if meta else None)
        if messages:
            self._save()

    def _new_tx_id(self) -> str:
        if self.version == "1.6":
            n = int(self.store.data.get("tx_counter", 0)) + 1
            self.store.data["tx_counter"] = n
            return f"L{n}"
        return uuid.uuid4().hex

    def _begin_tx(
        self,
        conn: Conn,
        id_tag: str | None,
        id_type: str,
        remote: bool,
        trigger: str,
        remote_start_id: int | None = None,
    ) -> Transaction:
        self.registers.update(conn.name, conn.snap)
        imp, _ = self.registers.value(conn.name)
        tx = Transaction(
            tx_id=self._new_tx_id(),
            connector=conn.name,
            evse=conn.index,
            started=time.time(),
            id_tag=id_tag,
            id_type=id_type,
            remote_start_id=remote_start_id,
            remote=remote,
            # the session bptd opened at authorize (telemetry tells it when this one is older)
            session_id=conn.snap.get("session_id") if conn.snap.get("state") in ACTIVE else None,
            meter_start_wh=imp,
            charging_state=charging_state(conn.status or "Preparing"),
            mode="ChargingOnly" if self.v2x else None,
        )
        tx.last_sample = time.monotonic()
        conn.tx = tx
        self.applied.setdefault(conn.name, {}).pop("mode", None)
        self.profiles.bind(tx.tx_id, conn.index)
        log.info("ocpp_transaction_started", connector=conn.name, tx=tx.tx_id, remote=remote)
        self._enqueue(
            self.adapter.tx_started(tx, self._readings(conn, "started_measurands"), trigger)
        )
        self.wake_applier()
        return tx

    def _end_tx(self, conn: Conn, reason: str) -> None:
        tx = conn.tx
        if tx is None:
            return
        conn.tx = None
        if conn.snap.get("session_id") == tx.session_id:
            self.registers.update(conn.name, conn.snap)
        log.info("ocpp_transaction_ended", connector=conn.name, tx=tx.tx_id, reason=reason)
        self._enqueue(self.adapter.tx_ended(tx, self._readings(conn, "ended_measurands"), reason))
        self.profiles.end_transaction(tx.tx_id)
        self._save()
        if tx.remote:
            self.spawn(self._release(conn), name="release")
        self.wake_applier()
        self._pulse()

    async def _release(self, conn: Conn) -> None:
        """After a transaction of ours: no setpoint of ours stays behind."""
        applied = self.applied.setdefault(conn.name, {})
        async with conn.lock:
            if applied.get("setpoint"):
                with contextlib.suppress(ApiError):
                    await self.daemon.call("setpoint", connector=conn.name, power_w=0.0)
            applied.pop("setpoint", None)
            applied.pop("mode", None)

    def tx_by_id(self, tx_id: str) -> Transaction | None:
        return next((c.tx for c in self.conns if c.tx is not None and c.tx.tx_id == tx_id), None)

    def conn(self, index: int | None) -> Conn | None:
        if index is None:
            return None
        return self.conns[index - 1] if 1 <= index <= len(self.conns) else None

    def start_refusal(self, conn: Conn) -> str | None:
        """Why a remote start on ``conn`` cannot be accepted (None: it can)."""
        if conn.inoperative or conn.pending_inoperative:
            return "the connector is inoperative"
        if conn.tx is not None or conn.starting:
            return "a transaction runs on this connector"
        if conn.state not in ("idle", "connected"):
            return f"the connector is {conn.state}"
        if not conn.snap.get("available", True):
            return "the connector is unavailable"
        if self.resetting:
            return "a reset is in progress"
        return None

    def pick_connector(self) -> Conn | None:
        """For a remote start without a connector: the first with a vehicle plugged, else
        the first free one."""
        free = [c for c in self.conns if self.start_refusal(c) is None]
        plugged = [c for c in free if c.state == "connected"]
        return (plugged or free or [None])[0]

    def remote_start(
        self,
        conn: Conn,
        id_tag: str,
        id_type: str,
        remote_start_id: int | None,
        authorize: Callable[[], Coroutine[Any, Any, bool]] | None,
    ) -> None:
        """Accepted: start the session in the background (after the answer is sent)."""
        conn.starting = True
        self.spawn(
            self._remote_start(conn, id_tag, id_type, remote_start_id, authorize), name="start"
        )

    async def _remote_start(
        self,
        conn: Conn,
        id_tag: str,
        id_type: str,
        remote_start_id: int | None,
        authorize: Callable[[], Coroutine[Any, Any, bool]] | None,
    ) -> None:
        assert self.devmodel is not None
        authorized = False
        try:
            check = authorize is not None and self.devmodel.get("authorize_remote")
            if check and authorize is not None and not await authorize():
                log.warning("ocpp_remote_start_not_authorized", connector=conn.name)
                return
            timeout = float(self.devmodel.get("connection_timeout"))
            if not await self.wait_for(lambda: conn.state != "idle", timeout):
                log.warning("ocpp_remote_start_no_vehicle", connector=conn.name, timeout_s=timeout)
                return
            await self.daemon.call("authorize", connector=conn.name)
            authorized = True
            tx = self._begin_tx(
                conn, id_tag, id_type, remote=True, trigger="RemoteStart",
                remote_start_id=remote_start_id,
            )  # fmt: skip
            await self._allocate(conn)
            await self.apply(conn)
            await self.daemon.call("start", connector=conn.name)
            log.info("ocpp_remote_start_done", connector=conn.name, tx=tx.tx_id)
        except ApiError as exc:
            log.warning(
                "ocpp_remote_start_failed", connector=conn.name, code=exc.code, error=str(exc)
            )
            if authorized:
                if conn.tx is not None:
                    conn.tx.stop_reason = "Other"
                with contextlib.suppress(ApiError):
                    await self.daemon.call("cancel", connector=conn.name)
        finally:
            conn.starting = False
            self.profiles.end_transaction("")  # a TxProfile of a start that did not happen
            self._pulse()

    async def _allocate(self, conn: Conn) -> None:
        """The modules of the first contactor configuration that routes only to this
        connector, largest and parallel first; others when those modules are busy."""
        status = await self.daemon.call("status")
        busy = {
            int(n)
            for n, m in (status.get("modules") or {}).items()
            if m.get("connector") not in (None, conn.name)
        }
        options: list[tuple[int, int, list[int], str]] = []
        for cfg in self.config.get("contactor_configurations") or []:
            modules = list((cfg.get("routes") or {}).get(conn.name) or [])
            if not modules or busy & set(modules):
                continue
            topology = cfg.get("topology", "parallel")
            only_here = len(cfg.get("routes") or {}) == 1
            options.append((-len(modules), 0 if only_here else 1, modules, topology))
        options.sort(key=lambda o: (o[0], o[1], o[3] != "parallel"))
        last: ApiError | None = None
        seen: set[tuple[tuple[int, ...], str]] = set()
        for _, _, modules, topology in options:
            key = (tuple(modules), topology)
            if key in seen:
                continue
            seen.add(key)
            try:
                await self.daemon.call(
                    "allocate", connector=conn.name, modules=modules, topology=topology
                )
                return
            except ApiError as exc:
                last = exc
        raise last or ApiError("not_allowed", f"no free modules for {conn.name}")

    async def remote_stop(self, tx: Transaction) -> None:
        conn = self.by_name[tx.connector]
        tx.stop_reason = "Remote"
        try:
            await self.daemon.call("stop", connector=conn.name)
        except ApiError as exc:
            log.warning("ocpp_remote_stop_failed", connector=conn.name, code=exc.code)
            if exc.code == "wrong_state" and conn.tx is tx and conn.state in TX_OVER:
                self._end_tx(conn, "Remote")

    async def stop_for_invalid_id(self, tx_id: str) -> None:
        assert self.devmodel is not None
        tx = self.tx_by_id(tx_id)
        if tx is None or not self.devmodel.get("stop_on_invalid"):
            return
        tx.stop_reason = "DeAuthorized"
        with contextlib.suppress(ApiError):
            await self.daemon.call("stop", connector=tx.connector)

    # ================================================================== availability
    def change_availability(self, index: int | None, operative: bool) -> str:
        targets = self.conns if not index else [c for c in self.conns if c.index == index]
        if not targets:
            return "Rejected"
        scheduled = False
        for c in targets:
            if operative:
                c.inoperative = c.pending_inoperative = False
            elif c.tx is not None or c.starting:
                c.pending_inoperative = True
                scheduled = True
            else:
                c.inoperative = True
            self._refresh_status(c)
        self._save()
        return "Scheduled" if scheduled else "Accepted"

    # ================================================================== sampling
    async def _sampler(self) -> None:
        assert self.devmodel is not None
        while True:
            await asyncio.sleep(SAMPLER_PERIOD_S)
            now = time.monotonic()
            interval = float(self.devmodel.get("meter_interval"))
            for conn in self.conns:
                self._refresh_status(conn)  # lets a debounced status through
                tx = conn.tx
                if tx is None:
                    continue
                if interval > 0 and now - tx.last_sample >= interval:
                    tx.last_sample += interval * max(1, int((now - tx.last_sample) // interval))
                    self._enqueue(
                        self.adapter.tx_updated(
                            tx, self._readings(conn, "measurands"), "MeterValuePeriodic",
                            "Sample.Periodic",
                        )
                    )  # fmt: skip
                ev = conn.snap.get("ev") or {}
                if (
                    self.online
                    and not tx.ev_needs_sent
                    and ev.get("present")
                    and float(ev.get("max_voltage_v") or 0) > 0
                ):
                    msg = self.adapter.ev_needs(conn, conn.snap)
                    if msg is not None:
                        tx.ev_needs_sent = True
                        self.spawn(self._send_ev_needs(tx, msg), name="ev needs")
            if now - self._registers_saved >= REGISTERS_SAVE_S:
                self._save()

    async def _send_ev_needs(self, tx: Transaction, msg: tuple[str, dict[str, Any]]) -> None:
        cp = self.cp
        if cp is None:
            tx.ev_needs_sent = False
            return
        try:
            result = await self.call(cp, *msg)
        except (OCPPError, ValidationError) as exc:  # refused: not again in this transaction
            log.warning("ocpp_ev_charging_needs_refused", evse=tx.evse, error=repr(exc))
        except (TimeoutError, Disconnected, websockets.exceptions.ConnectionClosed):
            tx.ev_needs_sent = False  # not delivered: again once online
        else:
            log.info("ocpp_ev_charging_needs", evse=tx.evse, status=getattr(result, "status", None))

    def trigger_readings(self, conn: Conn) -> list[Reading]:
        return self._readings(conn, "measurands")

    def common_trigger(
        self, message: str, conns: list[Conn]
    ) -> Callable[[], Coroutine[Any, Any, None]] | None:
        """What sends a TriggerMessage ``message`` that every version has in common
        (Heartbeat, StatusNotification, MeterValues, an idle status notification), or
        None when the version must decide."""
        if message == "Heartbeat":

            async def send() -> None:
                await self.send("Heartbeat", {})
        elif message == "StatusNotification":

            async def send() -> None:
                for c in conns:
                    await self.send_status(c)
        elif message == "MeterValues":

            async def send() -> None:
                for c in conns:
                    await self.send(
                        *self.adapter.meter_values(c, self.trigger_readings(c), "Trigger")
                    )
        elif message in (
            "LogStatusNotification", "FirmwareStatusNotification", "DiagnosticsStatusNotification"
        ):  # fmt: skip

            async def send() -> None:
                await self.send(message, {"status": "Idle"})
        else:
            return None
        return send

    def trigger_tx_update(self, conn: Conn) -> bool:
        if conn.tx is None:
            return False
        self._enqueue(
            self.adapter.tx_updated(
                conn.tx, self._readings(conn, "measurands"), "Trigger", "Trigger"
            )
        )
        return True

    # ================================================================== smart charging
    def _tx_context(self, conn: Conn) -> prof.TxContext | None:
        tx = conn.tx
        return None if tx is None else prof.TxContext(tx.tx_id, tx.started)

    def _share(self) -> float:
        return 1.0 / max(1, sum(1 for c in self.conns if c.tx is not None))

    def effective(self, conn: Conn, t: float | None = None) -> prof.Effective:
        share = self._share() if conn.tx is not None else 1.0
        return prof.effective(
            self.profiles.profiles, conn.index, time.time() if t is None else t,
            self._tx_context(conn), share,
        )  # fmt: skip

    async def apply(self, conn: Conn) -> None:
        """Bring bptd's limits (and, for our transactions, mode and setpoint) to what the
        profiles say now. Only what changed is sent; a limit this frontend never set is
        left alone."""
        async with conn.lock:
            await self._apply(conn)

    async def _apply(self, conn: Conn) -> None:
        eff = self.effective(conn)
        applied = self.applied.setdefault(conn.name, {})
        limits = {
            "max_charge_power_w": eff.charge_w,
            "max_ac_charge_current_a": eff.charge_a,
            "max_discharge_power_w": eff.discharge_w,
            "max_ac_discharge_current_a": eff.discharge_a,
        }
        # what bptd has now (its telemetry after our last change), to notice a restarted bptd
        # or another client that changed a limit this frontend owns
        actual = conn.snap.get("user_limits") if self._fresh(conn) else None
        changed: dict[str, float | None] = {}
        for k, v in limits.items():
            want = None if v is None else round(v, 3)
            if want is None:
                if k in applied:
                    changed[k] = None
            elif applied.get(k) != want or (
                actual is not None and actual.get(k) != applied["@" + k]
            ):
                changed[k] = want
        if changed:
            result = await self.daemon.call("set_limits", connector=conn.name, **changed)
            in_force = result.get("limits") or {}
            for k, v in changed.items():
                if v is None:
                    applied.pop(k, None)
                    applied.pop("@" + k, None)
                else:
                    applied[k] = v
                    applied["@" + k] = in_force.get(k, v)  # as bptd applied it (clamped)
            self._applied_at[conn.name] = time.monotonic()
            log.info("ocpp_limits_applied", connector=conn.name, limits=changed,
                     clamped=result.get("clamped") or None)  # fmt: skip
            self._save()
        tx = conn.tx
        if tx is None or not tx.remote:
            return
        mode = eff.mode if self.v2x else "ChargingOnly"
        bidirectional, control = MODES.get(mode, MODES["ChargingOnly"])
        if applied.get("mode") != [bidirectional, control]:
            await self.daemon.call(
                "set_mode", connector=conn.name, bidirectional=bidirectional, control=control
            )
            applied["mode"] = [bidirectional, control]
            applied.pop("setpoint", None)  # bptd may have zeroed it: send it again
        setpoint: float | None = None
        if mode == "CentralSetpoint":
            setpoint = eff.setpoint("W", self.watts_per_amp) or 0.0
        elif mode == "Idle":
            setpoint = 0.0
        if setpoint is not None and applied.get("setpoint") != round(setpoint, 3):
            try:
                await self.daemon.call("setpoint", connector=conn.name, power_w=round(setpoint, 3))
            except ApiError as exc:
                if exc.code not in ("not_allowed", "out_of_range"):
                    raise
                log.warning("ocpp_setpoint_refused", connector=conn.name, setpoint_w=setpoint,
                            code=exc.code, error=str(exc))  # fmt: skip
            applied["setpoint"] = round(setpoint, 3)
        if self.v2x and tx.mode != mode:
            tx.mode = mode
            self._enqueue(self.adapter.tx_mode(tx, mode))

    def _fresh(self, conn: Conn) -> bool:
        """The connector's telemetry was taken after our last change of its limits."""
        mono = conn.snap.get("mono")
        return isinstance(mono, int | float) and mono > self._applied_at.get(conn.name, 0.0)

    async def _applier(self) -> None:
        assert self._apply_event is not None
        while True:
            self._apply_event.clear()
            now = time.time()
            delay = 30.0
            for conn in self.conns:
                try:
                    await self.apply(conn)
                except ApiError as exc:
                    log.warning("ocpp_apply_failed", connector=conn.name, code=exc.code,
                                error=str(exc))  # fmt: skip
                    delay = 1.0
                nxt = prof.next_change(self.profiles.profiles, now, self._tx_context(conn))
                if nxt is not None:
                    delay = min(delay, nxt - time.time())
            # drop profiles that can never apply again (validTo passed)
            expired = [
                p for p in self.profiles.profiles if p.valid_to is not None and p.valid_to <= now
            ]
            if expired:
                for p in expired:
                    self.profiles.clear(pid=p.id)
                self._save()
            await wait_event(self._apply_event, max(0.01, delay + 0.005))

    def composite_schedule(
        self, evse: int, duration: int, unit: str
    ) -> tuple[float, list[dict[str, Any]]] | None:
        """(start, periods) for GetCompositeSchedule; None for an unknown EVSE. Periods carry
        ``start_period``, ``limit`` (a limit everywhere: the hardware maximum where no
        profile limits) and, for 2.1, ``discharge_limit`` / ``setpoint`` / ``operation_mode``."""
        if evse != 0 and self.conn(evse) is None:
            return None
        start = float(int(time.time()))
        conn = self.conn(evse)
        ctx = self._tx_context(conn) if conn is not None else None
        share = self._share() if conn is not None and conn.tx is not None else 1.0
        periods = prof.composite(self.profiles.profiles, evse, start, duration, ctx, share)
        hw_w = conn.max_power_w if conn is not None else self.station_max_w
        hw = hw_w if unit == "W" else hw_w / self.watts_per_amp
        out: list[dict[str, Any]] = []
        for offset, eff in periods:
            limit = eff.charge_limit(unit, self.watts_per_amp)
            period: dict[str, Any] = {
                "start_period": offset,
                "limit": round(min(hw, limit if limit is not None else hw), 1),
            }
            if self.v2x:
                dis = eff.discharge_limit(unit, self.watts_per_amp)
                if dis is not None:
                    period["discharge_limit"] = -round(dis, 1)
                if eff.mode != "ChargingOnly":
                    period["operation_mode"] = eff.mode
                sp = eff.setpoint(unit, self.watts_per_amp)
                if sp is not None and eff.mode == "CentralSetpoint":
                    period["setpoint"] = round(sp, 1)
            if out and {k: v for k, v in out[-1].items() if k != "start_period"} == {
                k: v for k, v in period.items() if k != "start_period"
            }:
                continue
            out.append(period)
        return start, out

    # ================================================================== reset
    def reset(
        self, hard: bool, evse: int | None = None, stop_tx: bool = True
    ) -> Coroutine[Any, Any, None]:
        """The work of an accepted reset (run it after the answer went out)."""
        self.resetting = evse is None
        return self._reset(hard, evse, stop_tx)

    def reset_on_idle(self, hard: bool, evse: int | None) -> Coroutine[Any, Any, None]:
        async def wait_then_reset() -> None:
            targets = [c for c in self.conns if evse in (None, c.index)]
            await self.wait_for(lambda: all(c.tx is None for c in targets), 10 * 365 * 86400.0)
            await self._reset(hard, evse, True)

        return wait_then_reset()

    async def _reset(self, hard: bool, evse: int | None, stop_tx: bool) -> None:
        targets = [c for c in self.conns if evse in (None, c.index)]
        reason = "HardReset" if hard else "SoftReset"
        self.resetting = evse is None
        log.info("ocpp_reset", hard=hard, evse=evse, stop_transactions=stop_tx)
        try:
            if stop_tx:
                for c in targets:
                    if c.tx is not None:
                        c.tx.stop_reason = reason
                        with contextlib.suppress(ApiError):
                            await self.daemon.call("stop", connector=c.name)
                done = await self.wait_for(
                    lambda: all(c.tx is None for c in targets), self.opts.reset_timeout_s
                )
                if not done:
                    for c in targets:
                        self._end_tx(c, reason)
            if hard:
                for c in targets:
                    if c.state == "fault":
                        await self._clear_fault(c)
            if evse is None:
                if self.online:
                    await self.queue.drained(10.0)
                # like a reboot: a new connection and a BootNotification
                self.boot_accepted = False
                self.boot_reason = "RemoteReset"
                self._reconnect_now = True
                if self._ws is not None:
                    await self._ws.close()
        finally:
            self.resetting = False

    async def _clear_fault(self, conn: Conn, patience_s: float = 5.0) -> None:
        """bptd's ``reset`` of a faulted connector; a cause that is still going away (the
        output discharging, a chipset state not yet updated) gets a few seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience_s
        while True:
            try:
                await self.daemon.call("reset", connector=conn.name)
                log.info("ocpp_reset_fault_cleared", connector=conn.name)
                return
            except ApiError as exc:
                if exc.code != "not_allowed" or loop.time() >= deadline:
                    log.warning("ocpp_reset_fault_persists", connector=conn.name, error=str(exc))
                    return
            await asyncio.sleep(0.5)

    # ================================================================== CSMS connection
    def _url(self) -> str:
        return self.opts.csms_url.rstrip("/") + "/" + self.opts.station_id

    async def _connection_loop(self) -> None:
        delay = self.opts.reconnect_min_s
        headers = {}
        if self.opts.password:
            token = base64.b64encode(f"{self.opts.station_id}:{self.opts.password}".encode())
            headers["Authorization"] = "Basic " + token.decode()
        while True:
            try:
                ws = await websockets.connect(
                    self._url(),
                    subprotocols=[self.adapter.subprotocol],  # type: ignore[list-item]
                    additional_headers=headers,
                    open_timeout=15,
                    close_timeout=2,
                    ping_interval=20,
                    ping_timeout=20,
                )
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                wait = delay * random.uniform(0.8, 1.2)
                log.warning(
                    "ocpp_connect_failed", url=self._url(), error=repr(exc), retry_s=round(wait, 2)
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.opts.reconnect_max_s)
                continue
            if ws.subprotocol != self.adapter.subprotocol:
                log.error(
                    "ocpp_subprotocol_refused", wanted=self.adapter.subprotocol, got=ws.subprotocol
                )
                await ws.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.opts.reconnect_max_s)
                continue
            delay = self.opts.reconnect_min_s
            log.info("ocpp_connected", url=self._url(), subprotocol=ws.subprotocol)
            try:
                await self._run_connection(ws)
            except Exception:
                log.exception("ocpp_connection_failed")
            finally:
                with contextlib.suppress(Exception):
                    await ws.close()
            log.warning("ocpp_disconnected", pending=len(self.queue))
            if self._reconnect_now:
                self._reconnect_now = False
                continue
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _run_connection(self, ws: Any) -> None:
        cp = self.adapter.charge_point(self.opts.station_id, ws, self.opts.response_timeout_s)
        reader = asyncio.get_running_loop().create_task(cp.start(), name="bptd-ocpp reader")
        self._ws, self.cp, self._reader = ws, cp, reader
        tasks: list[asyncio.Task[Any]] = []
        try:
            if not self.boot_accepted and not await self._boot(cp):
                return
            self.online = True
            for c in self.conns:
                self._refresh_status(c)
            tasks = [
                self.spawn(self._heartbeat(), name="heartbeat"),
                self.spawn(self._outbox(cp), name="outbox"),
                self.spawn(self._status_reporter(), name="status"),
            ]
            await asyncio.wait([reader, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.online = False
            self.cp = self._reader = self._ws = None
            for t in [reader, *tasks]:
                t.cancel()
            # their CancelledErrors are results here; our own cancellation still goes through
            await asyncio.gather(reader, *tasks, return_exceptions=True)

    async def call(
        self, cp: Any, action: str, payload: dict[str, Any], msg_id: str | None = None
    ) -> Any:
        """One CALL on ``cp``'s connection; raises OCPPError on a CALLERROR, TimeoutError,
        :class:`Disconnected` when the connection goes first."""
        request = getattr(cp._call, action)(**payload)
        reader = self._reader
        pending = asyncio.ensure_future(cp.call(request, suppress=False, unique_id=msg_id))
        try:
            waiters: list[asyncio.Future[Any]] = [pending] + (
                [reader] if reader is not None else []
            )
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            pending.cancel()
            raise
        if pending.done():
            return pending.result()
        pending.cancel()
        raise Disconnected(action)

    async def send(self, action: str, payload: dict[str, Any], force: bool = False) -> Any | None:
        """A message outside the queue (status, heartbeat, triggered messages): sent when
        online, its answer, or None when it could not be delivered."""
        cp = self.cp
        if cp is None or not (self.online or force):
            return None
        try:
            return await self.call(cp, action, payload)
        except (OCPPError, ValidationError, TimeoutError, Disconnected,
                websockets.exceptions.ConnectionClosed) as exc:  # fmt: skip
            log.warning("ocpp_send_failed", action=action, error=repr(exc))
            return None

    async def _boot(self, cp: Any) -> bool:
        assert self.devmodel is not None and self._reader is not None
        while not self._reader.done():
            action, payload = self.adapter.boot(self.identity, self.boot_reason)
            result = None
            try:
                result = await self.call(cp, action, payload)
            except (OCPPError, ValidationError, TimeoutError) as exc:
                log.warning("ocpp_boot_failed", error=repr(exc))
            except (Disconnected, websockets.exceptions.ConnectionClosed):
                return False
            status = getattr(result, "status", None)
            interval = int(getattr(result, "interval", 0) or 0)
            log.info("ocpp_boot", status=status, interval=interval)
            if status == "Accepted":
                if interval > 0:
                    self.devmodel.set_internal("heartbeat_interval", interval)
                    self.store.save()
                self.boot_accepted = True
                self.boot_reason = "PowerUp"
                self.reported = {}
                return True
            await asyncio.wait([self._reader], timeout=interval if interval > 0 else 10)
        return False

    async def boot_now(self) -> None:
        """A BootNotification on request (TriggerMessage)."""
        assert self.devmodel is not None
        action, payload = self.adapter.boot(
            self.identity, "Triggered" if self.version != "1.6" else ""
        )
        result = await self.send(action, payload, force=True)
        interval = int(getattr(result, "interval", 0) or 0)
        if getattr(result, "status", None) == "Accepted" and interval > 0:
            self.devmodel.set_internal("heartbeat_interval", interval)

    async def _heartbeat(self) -> None:
        assert self.devmodel is not None
        while True:
            await asyncio.sleep(max(1.0, float(self.devmodel.get("heartbeat_interval"))))
            await self.send("Heartbeat", {})

    async def _status_reporter(self) -> None:
        assert self._status_event is not None
        while True:
            self._status_event.clear()
            for c in self.conns:
                if c.status is not None and self.reported.get(c.index) != c.status:
                    status = c.status
                    if await self.send(*self.adapter.status(c, status)) is not None:
                        self.reported[c.index] = status
            await self._status_event.wait()

    async def send_status(self, conn: Conn) -> None:
        if conn.status is not None and await self.send(*self.adapter.status(conn, conn.status)):
            self.reported[conn.index] = conn.status

    async def _outbox(self, cp: Any) -> None:
        assert self.devmodel is not None
        while True:
            item = await self.queue.next()
            payload = self.adapter.resolve(item, self.queue)
            try:
                result = await self.call(cp, item.action, payload, item.msg_id)
            except (OCPPError, ValidationError) as exc:
                item.attempts += 1
                attempts = int(self.devmodel.get("message_attempts"))
                log.warning("ocpp_transaction_message_refused", action=item.action, seq=item.seq,
                            attempt=item.attempts, of=attempts, error=repr(exc))  # fmt: skip
                if item.attempts >= attempts:
                    log.error("ocpp_transaction_message_given_up", action=item.action, seq=item.seq)
                    self.queue.ack(item.seq)
                else:
                    await asyncio.sleep(float(self.devmodel.get("message_retry_s")) * item.attempts)
                continue
            except TimeoutError:
                log.warning("ocpp_transaction_message_timeout", action=item.action, seq=item.seq)
                continue
            tx_ids = self.adapter.acked(item, result)
            self.queue.ack(item.seq, tx_ids)


def _adapter(fe: Frontend) -> Adapter:
    if fe.version == "1.6":
        from bptd.ocpp.v16 import V16

        return V16(fe)
    from bptd.ocpp.v2 import V2

    return V2(fe)
