"""``ChademoCharger``: the CHAdeMO charger on its CAN bus, an ``hlc`` frontend of the daemon.

Every 100 ms (CHAdeMO's frame cycle) the driver thread reads what the vehicle sent, steps
:class:`~bptd.chademo.protocol.ChargerProtocol` with the daemon's last report, drives d1 / d2
and sends the charger frames. The daemon is reached only through ``hlc_update``,
``hlc_status`` and ``hlc_end``, from a second thread (:class:`_DaemonLink`), so a slow or
absent daemon never delays a frame: the protocol sees the report's age instead and stops the
session when it is older than ``daemon_timeout_s``.

::

    with ChademoCharger("socketcan:can1", "ipc:///run/bptd/control.sock", "chademo") as cha:
        ...                      # cha.status(): stage, d1, d2, last stop reason
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import can
import structlog

from bptd.api.client import Client
from bptd.api.protocol import ApiError, ErrorCode
from bptd.canbus import BusSpec, parse_bus_spec
from bptd.chademo import frames as fr
from bptd.chademo.pins import HarnessPins, NoPins, Pins
from bptd.chademo.protocol import ChademoConfig, ChargerProtocol, Output, Stage

log = structlog.get_logger(__name__)

#: stages without a vehicle session: the daemon is only polled, this often
IDLE_POLL_S = 0.25


class _DaemonLink:
    """The ``hlc_*`` requests of one connector, in a thread of their own.

    :meth:`post` hands over the next ``hlc_update`` fields (the latest wins) and whether to
    send ``hlc_end`` after them (kept until sent); with nothing posted for ``poll_s`` the
    thread asks ``hlc_status``. :meth:`latest` is the last report and its age.
    """

    def __init__(self, endpoint: str, connector: str, timeout_s: float, poll_s: float) -> None:
        self.connector = connector
        self.poll_s = poll_s
        self.client = Client(endpoint, timeout_s=timeout_s)
        self._cond = threading.Condition()
        self._update: Mapping[str, Any] | None = None
        self._end = False
        self._pending = False
        self._report: Mapping[str, Any] | None = None
        self._report_at = -math.inf
        self._errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bptd-chademo-hlc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        self._thread.join(timeout=self.client.timeout_s * 3 + 1.0)
        if not self._thread.is_alive():
            self.client.close()

    def post(self, update: Mapping[str, Any] | None, end: bool = False) -> None:
        with self._cond:
            if update is not None:
                self._update = update
            self._end = self._end or end
            self._pending = True
            self._cond.notify()

    def latest(self, now: float) -> tuple[Mapping[str, Any] | None, float]:
        with self._cond:
            return self._report, now - self._report_at

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._cond:
                    self._cond.wait_for(lambda: self._pending or self._stop.is_set(), self.poll_s)
                    update, end = self._update, self._end
                    self._update, self._end, self._pending = None, False, False
                if self._stop.is_set():
                    break
                if update is not None:
                    self._call("hlc_update", **update)
                elif not end:
                    self._call("hlc_status")
                if end:
                    self._call("hlc_end")
        finally:
            self.client.close()

    def _call(self, cmd: str, **args: Any) -> None:
        try:
            result = self.client.call(cmd, connector=self.connector, **args)
        except ApiError as exc:
            code = str(exc.code)
            first = self._errors.get(cmd) != code
            self._errors[cmd] = code
            (log.warning if first else log.debug)(
                "chademo_request_failed", connector=self.connector, cmd=cmd, code=code,
                message=exc.message,
            )  # fmt: skip
            return
        except Exception:  # a broken reply must not end the thread
            self._errors[cmd] = ErrorCode.INTERNAL
            log.warning("chademo_request_failed", connector=self.connector, cmd=cmd, exc_info=True)
            return
        if self._errors.pop(cmd, None) is not None:
            log.info("chademo_daemon_answers", connector=self.connector, cmd=cmd)
        if isinstance(result, Mapping):
            with self._cond:
                self._report, self._report_at = result, time.monotonic()


class ChademoCharger:
    """The charger side of CHAdeMO for ``connector`` on ``bus`` (a spec string such as
    ``socketcan:can1``, a :class:`BusSpec`, or an open python-can bus), reporting to the
    daemon at ``control_endpoint``.

    ``pins``: ``"auto"`` (the simulation harness frame on ``virtual`` / ``udp_multicast``
    buses, nothing on SocketCAN), ``"harness"``, ``"none"`` or a :class:`Pins` object.
    """

    def __init__(
        self,
        bus: can.BusABC | BusSpec | str,
        control_endpoint: str,
        connector: str = "chademo",
        *,
        pins: Pins | str = "auto",
        config: ChademoConfig | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        if isinstance(bus, str):
            bus = parse_bus_spec(bus)
        self.spec = bus if isinstance(bus, BusSpec) else None
        self._own_bus = self.spec is not None
        self.bus: can.BusABC = bus.open() if isinstance(bus, BusSpec) else bus
        self.connector = connector
        self.cfg = config or ChademoConfig()
        self.period_s = fr.PERIOD_S
        self.protocol = ChargerProtocol(self.cfg)
        self.pins = self._pins(pins)
        self.link = _DaemonLink(control_endpoint, connector, timeout_s, IDLE_POLL_S)
        self.frames: dict[int, fr.Received] = {}
        self.rx_frames = 0
        self.tx_frames = 0
        self.cycles = 0
        self.last: Output | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _pins(self, pins: Pins | str) -> Pins:
        if not isinstance(pins, str):
            return pins
        if pins == "auto":
            pins = "harness" if self.spec is not None and self.spec.interface != "socketcan" else (
                "none")  # fmt: skip
        if pins == "harness":
            return HarnessPins(self.bus)
        if pins == "none":
            return NoPins(self.connector)
        raise ValueError(f"pins must be 'auto', 'harness' or 'none', not {pins!r}")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ChademoCharger:
        if self._thread is not None:
            raise RuntimeError("CHAdeMO charger already started")
        self.link.start()
        self._thread = threading.Thread(target=self._run, name="bptd-chademo", daemon=True)
        self._thread.start()
        log.info("chademo_started", connector=self.connector, bus=str(self.bus.channel_info),
                 pins=type(self.pins).__name__)  # fmt: skip
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            self.pins.set(False, False)  # a charger that goes away drops d1 / d2
        except Exception:
            log.debug("chademo_pins_release_failed", exc_info=True)
        self.link.close()
        if self._own_bus:
            self.bus.shutdown()
        log.info("chademo_stopped", connector=self.connector)

    def __enter__(self) -> ChademoCharger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stage(self) -> Stage:
        return self.protocol.stage

    def status(self) -> dict[str, Any]:
        report, age = self.link.latest(time.monotonic())
        return {
            "connector": self.connector,
            **self.protocol.status(),
            "session_state": report.get("state") if report else None,
            "report_age_s": round(age, 3) if math.isfinite(age) else None,
            "rx_frames": self.rx_frames,
            "tx_frames": self.tx_frames,
            "cycles": self.cycles,
        }

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            try:
                self.cycle(time.monotonic())
            except Exception:
                log.exception("chademo_cycle_failed", connector=self.connector)
            deadline += self.period_s
            delay = deadline - time.monotonic()
            if delay < -self.period_s:  # overrun: a new schedule, no burst of frames
                deadline = time.monotonic()
                delay = 0.0
            self._stop.wait(max(0.0, delay))

    def cycle(self, now: float) -> Output:
        """One 100 ms cycle (what the thread does)."""
        self._drain(now)
        report, age = self.link.latest(now)
        out = self.protocol.step(now, self.frames, report, age)
        self.last = out
        for kind, detail in out.events:
            log.info(f"chademo_{kind}", connector=self.connector, detail=detail)
        self.pins.set(out.d1, out.d2)
        for frame_id, values in out.frames:
            self._send(fr.encode(frame_id, values))
        if out.hlc is not None or out.end:
            self.link.post(out.hlc, out.end)
        self.cycles += 1
        return out

    def _drain(self, now: float) -> None:
        while True:
            try:
                msg = self.bus.recv(0)
            except can.CanError as exc:
                log.warning("chademo_receive_failed", connector=self.connector, error=str(exc))
                return
            if msg is None:
                return
            if msg.is_error_frame or msg.arbitration_id not in fr.VEHICLE_IDS:
                continue
            values = fr.decode(msg.arbitration_id, msg.data)
            if values is not None:
                self.frames[msg.arbitration_id] = fr.Received(values, now)
                self.rx_frames += 1

    def _send(self, msg: can.Message) -> None:
        try:
            self.bus.send(msg)
            self.tx_frames += 1
        except can.CanError as exc:
            log.warning("chademo_send_failed", connector=self.connector, error=str(exc))
