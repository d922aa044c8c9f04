"""``bptd run``: the daemon process around the control loop.

:class:`Daemon` wires the parts: the crash-safe journal (recovered first), the API
sockets, the fieldbus, the optional in-process virtual station (with its virtual EVCC),
the control loop and systemd notification. :meth:`Daemon.run` is the one thread that owns
the state: it waits on the command socket with a ``zmq.Poller`` until the next tick is
due, serves requests between ticks, and ticks at the configured rate.

Shutdown (SIGTERM / SIGINT) is orderly: running sessions are stopped (ramp to 0 A,
contactors open) within ``shutdown_timeout_s``, open records are closed, then the
fieldbus stops its heartbeat. A crash or ``kill -9`` needs none of this: the devices'
own heartbeat and RPDO deadlines take them to a safe state.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
import zmq

from bptd.api.server import CommandServer
from bptd.canbus import BusSpec, parse_bus_spec
from bptd.config import Config
from bptd.daemon.commands import Commands
from bptd.daemon.loop import ControlLoop
from bptd.daemon.publish import QueuedPublisher
from bptd.errors import BptdError
from bptd.fieldbus import Fieldbus
from bptd.records import SessionJournal
from bptd.service import SystemdNotifier, Watchdog
from bptd.session import SessionConfig

log = structlog.get_logger("bptd.daemon")

#: the longest the loop thread waits for the GIL when it wakes while the CAN notifier or
#: the telemetry thread runs (Python's default is 5 ms, half a control period)
GIL_SWITCH_S = 0.0005


@dataclass(frozen=True)
class DaemonOptions:
    sim: bool = False
    can: str | None = None  # CAN spec; default: config (or a private virtual bus with sim)
    control: str | None = None  # default: config.api.control
    telemetry: str | None = None  # default: config.api.telemetry
    records_dir: str | None = None  # default: $STATE_DIRECTORY, else config.records.dir
    evcc: bool = True  # with sim: the virtual EVCC plays the vehicles' ISO 15118 side
    shutdown_timeout_s: float = 6.0


class Daemon:
    """One station's daemon. ``start()`` builds everything, ``run(stop)`` loops."""

    def __init__(self, config: Config, options: DaemonOptions | None = None) -> None:
        self.cfg = config
        self.opts = options or DaemonOptions()
        o = self.opts
        self.control = o.control or config.api.control
        self.telemetry = o.telemetry or config.api.telemetry
        self.bus_spec = self._bus_spec()
        self.records_dir = (
            o.records_dir
            or (os.environ.get("STATE_DIRECTORY", "").split(":")[0] or None)
            or config.records.dir
        )
        self.notifier = SystemdNotifier()
        self.watchdog = Watchdog(self.notifier)
        self.context: zmq.Context[Any] = zmq.Context()
        self.journal: SessionJournal | None = None
        self.server: CommandServer | None = None
        self.publisher: Any = None
        self.fieldbus: Fieldbus | None = None
        self.sim: Any = None
        self.evcc: Any = None
        self.loop: ControlLoop | None = None
        self.commands: Commands | None = None
        self.ready = threading.Event()
        self.stopped = threading.Event()
        #: tick start lateness against the schedule (s), for the jitter figure
        self.lateness_s: collections.deque[float] = collections.deque(maxlen=20000)
        self.periods_s: collections.deque[float] = collections.deque(maxlen=20000)
        #: CPU time of the loop thread (``time.thread_time``), updated once per tick
        self.loop_cpu_s = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._errors_in_row = 0
        self._last_status = ""
        self._last_status_at = -math.inf

    def _bus_spec(self) -> BusSpec:
        if self.opts.can:
            return parse_bus_spec(self.opts.can)
        if self.opts.sim:
            return parse_bus_spec(f"virtual:bptd-sim-{uuid.uuid4().hex[:12]}")
        return parse_bus_spec(self.cfg.can.bus)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Daemon:
        """Recover the records, bind the sockets, start the bus (and the virtual station)."""
        from bptd.api.telemetry import Publisher

        cfg, api = self.cfg, self.cfg.api
        # the limits kernels are compiled (or loaded from numba's cache) before any device
        # runs: a compile inside the first tick would stall the loop for seconds
        from bptd.limits import warm_up

        warm_up()
        sys.setswitchinterval(GIL_SWITCH_S)
        try:
            self.journal = SessionJournal(self.records_dir, cfg.records.fsync_interval_s)
        except OSError as exc:
            raise BptdError(f"cannot open the records in {self.records_dir}: {exc}") from None
        for rec in self.journal.recover():
            log.warning("record_recovered", session_id=rec.session_id, connector=rec.connector,
                        energy_import_wh=round(rec.energy_import_wh, 3),
                        energy_export_wh=round(rec.energy_export_wh, 3))  # fmt: skip
        curve = _curve(cfg)
        try:
            self.publisher = QueuedPublisher(
                Publisher(
                    self.telemetry, self.context, mode=api.socket_mode, group=api.socket_group,
                    curve=curve,
                )
            )  # fmt: skip
            self.fieldbus = Fieldbus(cfg, bus=self.bus_spec)
            self.loop = ControlLoop(
                cfg, self.fieldbus, session_config=SessionConfig(), journal=self.journal,
                publish=self.publisher.publish, hlc_timeout_s=api.hlc_timeout_s,
            )  # fmt: skip
            if self.opts.sim:
                from bptd.sim.station import VirtualStation

                self.sim = VirtualStation(cfg, self.bus_spec).start()
            self.commands = Commands(self.loop, self.sim)
            self.server = CommandServer(
                self.control, self.commands.handle, self.context, mode=api.socket_mode,
                group=api.socket_group, curve=curve,
            )  # fmt: skip
        except zmq.ZMQError as exc:
            self.close()
            raise BptdError(f"cannot bind the API sockets: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.fieldbus.start()
        log.info(
            "daemon_started",
            control=self.control,
            telemetry=self.telemetry,
            bus=str(self.bus_spec),
            sim=self.opts.sim,
            records=str(self.journal.path),
            connectors=list(self.loop.connectors),
            modules=list(self.loop.modules),
        )
        self.notifier.status("booting the CANopen nodes")
        return self

    def start_evcc(self) -> None:
        if self.sim is None or not self.opts.evcc:
            return
        if self.evcc is None:
            from bptd.sim.evcc import VirtualEvcc

            self.evcc = VirtualEvcc(self.sim, self.control)
            self.evcc.start()
        self.start_chademo()

    #: with sim: the CHAdeMO connector's charger driver and virtual vehicle ECU
    chademo: Any = None

    def start_chademo(self) -> None:
        """With sim: the CHAdeMO charger (``bptd.chademo``) and the virtual vehicle ECU on a
        private ``virtual`` CHAdeMO bus, for the first connector of kind ``chademo``."""
        if self.sim is None or not self.opts.evcc or self.chademo is not None:
            return
        from bptd.sim.chademo_ev import start_virtual_chademo

        self.chademo = start_virtual_chademo(self.sim, self.control)

    def run(self, stop: threading.Event | None = None) -> None:
        """The loop (blocks). Returns after ``stop`` is set and the shutdown finished."""
        stop = stop or self._stop
        loop, server = self.loop, self.server
        assert loop is not None and server is not None
        poller = zmq.Poller()
        poller.register(server.socket, zmq.POLLIN)
        period = 1.0 / self.cfg.station.control_hz
        boot_deadline = time.monotonic() + self.cfg.can.boot_timeout_s
        next_t = time.monotonic()
        last_tick: float | None = None
        self.start_evcc()
        try:
            while not stop.is_set():
                retry = loop.retry_at  # a command's RPDOs held back: a light tick then
                wake = next_t if retry is None else min(next_t, retry)
                wait = wake - time.monotonic()
                if wait > 0:
                    if poller.poll(math.ceil(wait * 1000)):
                        server.serve_pending()
                        if loop.urgent:
                            self._safe_tick(time.monotonic(), light=True)
                        continue
                    if next_t - time.monotonic() > 0:
                        if retry is not None:
                            self._safe_tick(time.monotonic(), light=True)
                        continue
                now = time.monotonic()
                self.lateness_s.append(now - next_t)
                if last_tick is not None:
                    self.periods_s.append(now - last_tick)
                last_tick = now
                healthy = self._safe_tick(now)
                self.watchdog.loop_tick(now, healthy)
                self._service_status(now, boot_deadline)
                self.loop_cpu_s = time.thread_time()
                next_t += period
                if now - next_t > 5 * period:  # overrun: start a new schedule
                    next_t = now + period
        finally:
            self._shutdown(poller)

    def _safe_tick(self, now: float, light: bool = False) -> bool:
        loop = self.loop
        assert loop is not None
        try:
            loop.tick(now, light)
        except Exception:
            loop.tick_errors += 1
            self._errors_in_row += 1
            log.exception("tick_failed", errors_in_row=self._errors_in_row)
            return False
        self._errors_in_row = 0
        return True

    def _service_status(self, now: float, boot_deadline: float) -> None:
        loop = self.loop
        assert loop is not None
        up, total = loop.nodes_booted()
        if not self.ready.is_set() and (up == total or now >= boot_deadline):
            text = f"{up}/{total} CANopen nodes operational"
            if up < total:
                text += " (boot timeout; the others are retried)"
            self.notifier.ready(text)
            log.info("daemon_ready", nodes_operational=up, nodes_total=total)
            self.ready.set()
        if now - self._last_status_at < 2.0:
            return
        parts = []
        for name, cr in loop.connectors.items():
            st = loop.station[name].state.value
            power = f" {cr.power_w / 1000:+.1f} kW" if cr.current_a else ""
            parts.append(f"{name}: {st}{power}")
        text = " | ".join(parts) + f" | {up}/{total} nodes"
        if text != self._last_status:
            self.notifier.status(text)
            self._last_status = text
        self._last_status_at = now

    def _shutdown(self, poller: zmq.Poller) -> None:
        """Stop the sessions (ramp to 0 A, contactors open), then close everything."""
        loop, server = self.loop, self.server
        assert loop is not None and server is not None
        self.notifier.stopping("stopping: ramping down")
        if self.evcc is not None:
            self.evcc.close()
            self.evcc = None
        for s in loop.station.sessions.values():
            try:
                s.stop()
            except Exception:  # not running: nothing to stop
                pass
        deadline = time.monotonic() + self.opts.shutdown_timeout_s
        period = 1.0 / self.cfg.station.control_hz
        while loop.energized() and time.monotonic() < deadline:
            if poller.poll(math.ceil(period * 1000)):
                server.serve_pending()
            self._safe_tick(time.monotonic())
        loop.close_records("daemon stopped")
        log.info("daemon_stopped", energized=loop.energized())
        self.close()

    def close(self) -> None:
        if self.evcc is not None:
            self.evcc.close()
            self.evcc = None
        if self.chademo is not None:
            self.chademo.close()
            self.chademo = None
        if self.fieldbus is not None:
            self.fieldbus.close()
            self.fieldbus = None
        if self.sim is not None:
            self.sim.close()
            self.sim = None
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        self.notifier.close()
        self.context.term()
        self.stopped.set()

    # ------------------------------------------------------------------ in a thread
    def start_thread(self) -> Daemon:
        """``start()`` and ``run()`` in a background thread (tests, benchmarks, demo)."""
        self.start()
        self._thread = threading.Thread(target=self.run, name="bptd-loop", daemon=True)
        self._thread.start()
        return self

    def stop_thread(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Daemon:
        return self.start_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()


def _curve(cfg: Config) -> Any:
    api = cfg.api
    if not (api.curve_secret_key or api.curve_public_key):
        return None
    from bptd.api import load_curve

    return load_curve(api.curve_secret_key, api.curve_public_key, tuple(api.curve_client_keys))
