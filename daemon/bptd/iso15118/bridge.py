"""What the SECC frontend tells bptd and asks it, through the ``hlc_*`` commands only.

:class:`HlcBridge` keeps the vehicle's side of one connector (its ISO 15118 phase as this
frontend tracks it, its limits and targets) and sends it with every ``hlc_update``; the
daemon answers with its session state, the measured output and the station limits to
announce. It does not import the ``iso15118`` package, so it is tested in the main
environment too.

The bridge never decides anything about power: every number it sends is what the vehicle
asked for (clamped only into the API's argument ranges, which narrows it); the daemon
clamps the setpoint to every limit in force.

Freshness: the daemon drops EV data ``api.hlc_timeout_s`` after the last ``hlc_update``.
The bridge sends one for every EV request and while it waits inside one, never on its own,
so a vehicle that goes silent ends the transfer in bptd by itself.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from bptd.api.client import ApiError, AsyncClient

log = structlog.get_logger(__name__)


class Phase(enum.StrEnum):
    """The ``phase`` values of ``hlc_update`` (docs/api.md), in sequence order."""

    NONE = "none"
    SESSION_SETUP = "session_setup"
    AUTHORIZATION = "authorization"
    PARAMETER_DISCOVERY = "parameter_discovery"
    CABLE_CHECK = "cable_check"
    PRECHARGE = "precharge"
    POWER_DELIVERY_START = "power_delivery_start"
    CHARGE_LOOP = "charge_loop"
    POWER_DELIVERY_STOP = "power_delivery_stop"
    WELDING_DETECTION = "welding_detection"
    SESSION_STOP = "session_stop"


_ORDER = list(Phase)

#: ``hlc_update`` argument ranges (docs/api.md); values are clamped into them before sending
RANGES: dict[str, tuple[float, float]] = {
    "max_voltage_v": (0.0, 1500.0),
    "min_voltage_v": (0.0, 1500.0),
    "max_charge_current_a": (0.0, 1000.0),
    "max_discharge_current_a": (0.0, 1000.0),
    "max_charge_power_w": (0.0, 1e6),
    "max_discharge_power_w": (0.0, 1e6),
    "target_voltage_v": (0.0, 1500.0),
    "target_current_a": (-1000.0, 1000.0),
    "present_voltage_v": (0.0, 1500.0),
    "soc": (0.0, 100.0),
}

#: bptd session states, grouped as the frontend needs them
BEFORE_AUTH = frozenset({"idle", "connected"})
AUTHORIZED = frozenset({"authorized", "allocated", "cable_check", "precharge", "energy_transfer"})
STOPPED = frozenset({"stopping", "welding_detection", "finished", "fault", "idle", "connected"})
OUTPUT_OPEN = frozenset({"welding_detection", "finished", "fault", "idle", "connected"})

#: |current| below which the output counts as stopped (the session's stop threshold)
STOP_CURRENT_A = 1.0


def clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` without None / non-finite numbers, numbers clamped into :data:`RANGES`."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key in RANGES:
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            v = float(value)
            if not math.isfinite(v):
                continue
            lo, hi = RANGES[key]
            out[key] = round(min(hi, max(lo, v)), 3)
        else:
            out[key] = value
    return out


def num(report: Mapping[str, Any] | None, key: str, default: float = 0.0) -> float:
    if report is None:
        return default
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


class HlcBridge:
    """One connector's vehicle as the SECC sees it, and bptd's answers.

    ``authorize``: ``"bptd"`` waits until something else authorizes the connector in bptd
    (OCPP, an operator, a script) and answers the vehicle "ongoing" meanwhile; ``"self"``
    authorizes it at the vehicle's request (free charging). Either way, once authorized the
    bridge allocates modules (unless already done) and starts the session in bptd when the
    vehicle asks for the cable check.
    """

    def __init__(
        self,
        client: AsyncClient,
        connector: str,
        authorize: str = "bptd",
        poll_s: float = 0.05,
    ) -> None:
        if authorize not in ("bptd", "self"):
            raise ValueError("authorize must be 'bptd' or 'self'")
        self.client = client
        self.connector = connector
        self.authorize_mode = authorize
        self.poll_s = poll_s
        self.report: dict[str, Any] | None = None
        self.reset()

    # ------------------------------------------------------------------ session data
    def reset(self) -> None:
        """A new V2G session: forget the previous vehicle."""
        self.phase = Phase.NONE
        self.ev: dict[str, Any] = {}
        self.bpt = False
        self.control = "scheduled"
        self.prepared = False
        self.failed_reason = ""

    def advance(self, phase: Phase) -> bool:
        """Move forward to ``phase`` (never back); True when it changed."""
        if _ORDER.index(phase) > _ORDER.index(self.phase):
            log.info("iso15118_phase", connector=self.connector, phase=phase.value)
            self.phase = phase
            return True
        return False

    def at_least(self, phase: Phase) -> bool:
        return _ORDER.index(self.phase) >= _ORDER.index(phase)

    @property
    def state(self) -> str:
        return str((self.report or {}).get("state", ""))

    # ------------------------------------------------------------------ requests
    async def update(self, **fields: Any) -> dict[str, Any] | None:
        """Merge ``fields`` into the vehicle's data and send it all with the phase.

        Returns the daemon's report (also kept in :attr:`report`), or None when the daemon
        refused or did not answer (logged; the last report stays)."""
        self.ev.update(clean(fields))
        args = {**self.ev, "phase": self.phase.value, "bpt": self.bpt}
        return await self._call("hlc_update", **args)

    async def status(self) -> dict[str, Any] | None:
        return await self._call("hlc_status")

    async def end(self) -> None:
        """The V2G session is over: bptd forgets the vehicle's data."""
        await self._call("hlc_end")

    async def wait(
        self, predicate: Callable[[Mapping[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any] | None:
        """Update every ``poll_s`` until ``predicate(report)`` or ``timeout_s``; the last
        report either way (the caller decides from it)."""
        deadline = time.monotonic() + timeout_s
        report = await self.update()
        while report is None or not predicate(report):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self.poll_s, remaining))
            report = await self.update()
        return report

    async def _call(self, cmd: str, **args: Any) -> dict[str, Any] | None:
        try:
            result = await self.client.call(cmd, connector=self.connector, **args)
        except ApiError as exc:
            log.warning("iso15118_bptd_refused", cmd=cmd, code=str(exc.code), error=exc.message)
            return None
        if isinstance(result, dict):
            self.report = result
            return result
        return None

    # ------------------------------------------------------------------ session steps
    async def authorization(self) -> bool | None:
        """True: authorized in bptd; None: not yet (answer "ongoing"); False: refused."""
        report = await self.update()
        if report is None:
            return None
        state = str(report.get("state"))
        if state in AUTHORIZED:
            return True
        if state == "fault":
            return False
        if self.authorize_mode != "self" or state not in ("connected", "finished"):
            return None
        try:
            if state == "finished":  # a new session of a vehicle still plugged: re-arm
                state = str((await self.client.call("rearm", connector=self.connector))["state"])
            if state == "connected":
                await self.client.call("authorize", connector=self.connector)
            log.info("iso15118_authorized_self", connector=self.connector)
            return True
        except ApiError as exc:
            log.warning("iso15118_authorize_failed", code=str(exc.code), error=exc.message)
        return None

    async def prepare(self) -> None:
        """Before the cable check: the control mode of this session, modules allocated and
        the session started in bptd (each only when not done yet by someone else)."""
        if self.prepared:
            return
        report = await self.update()
        if report is None:
            return
        try:
            if report.get("control") != self.control:
                await self.client.call(
                    "set_mode",
                    connector=self.connector,
                    bidirectional=bool(report.get("bidirectional")),
                    control=self.control,
                )
            state = str(report.get("state"))
            if state == "authorized":
                await self._allocate()
                state = "allocated"
            if state == "allocated":
                await self.client.call("start", connector=self.connector)
            self.prepared = True
            log.info("iso15118_session_started", connector=self.connector, control=self.control)
        except ApiError as exc:
            log.warning("iso15118_start_failed", code=str(exc.code), error=exc.message)

    async def _allocate(self) -> None:
        """The modules of the largest contactor configuration routing to this connector
        (configurations serving only this connector first) that are free."""
        cfg = await self.client.call("config")
        status = await self.client.call("status")
        busy = {
            int(n)
            for n, m in (status.get("modules") or {}).items()
            if m.get("connector") not in (None, self.connector)
        }
        options: list[tuple[int, int, bool, list[int], str]] = []
        for c in cfg.get("contactor_configurations") or []:
            routes = c.get("routes") or {}
            modules = [int(n) for n in routes.get(self.connector) or []]
            if not modules or busy & set(modules):
                continue
            topology = str(c.get("topology", "parallel"))
            options.append((-len(modules), len(routes), topology != "parallel", modules, topology))
        options.sort(key=lambda o: o[:3])
        last: ApiError | None = None
        for *_, modules, topology in options:
            try:
                await self.client.call(
                    "allocate", connector=self.connector, modules=modules, topology=topology
                )
                log.info("iso15118_allocated", connector=self.connector, modules=modules)
                return
            except ApiError as exc:
                last = exc
        raise last or ApiError("not_allowed", f"no free modules for {self.connector}")
