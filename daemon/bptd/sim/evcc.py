"""The virtual EVCC: the ISO 15118 vehicle side of every plugged CCS vehicle of a station.

:class:`VirtualEvcc` talks to the daemon only through its ``hlc_*`` commands (the ones the
real ISO 15118 frontend uses) and acts on the vehicle only through the station's ``ev``
action (CP state, the vehicle's contactors). Every ``period_s`` and for every connector with
a CCS vehicle it asks ``hlc_status``, lets :class:`EvccLogic` decide, moves the vehicle and
sends ``hlc_update`` (like a CurrentDemandReq, well within the daemon's 2 s freshness).

:class:`EvccLogic` is the decision, without I/O: given the session report and the vehicle
snapshot it returns the EV phase, the ``hlc_update`` fields and the physical actions, as a
cooperative ISO 15118-20 DC BPT (or DC, for a vehicle without BPT) EV would:

=================================================  ===========================================
session state (report)                             EV
=================================================  ===========================================
idle / connected                                   authorization, CP B, contactors open
authorized                                         parameter_discovery
allocated                                          CP C, cable_check
cable_check, ``cable_check_done``                  precharge to the battery voltage
precharge, ``precharge_done``                      close contactors, power_delivery_start
energy_transfer                                    charge_loop; power_delivery_stop when the EV
                                                   wants to stop (target / minimum SoC, the
                                                   ``ev`` action's ``stop``, EVSE stop request)
stopping / welding_detection, abs(I) < 1 A         open contactors, welding_detection
finished                                           session_stop, CP B; next cycle ``hlc_end``
fault                                              open contactors, CP B
vehicle unplugged                                  ``hlc_end`` (the connector is forgotten)
=================================================  ===========================================

After ``hlc_end`` the EV waits; once the daemon re-arms (authorized / connected) it starts
again. CHAdeMO vehicles are left alone. The EV's physical state is changed only when its own
decision changes, so a test may still drive ``ev`` by hand between two decisions.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from bptd.api.client import Client
from bptd.api.protocol import ApiError, ErrorCode
from bptd.session.states import EvPhase, State
from bptd.sim.station import VirtualStation

log = structlog.get_logger(__name__)

#: |current| below which the EV opens its contactors after a stop (as the session's stop rule)
STOP_CURRENT_A = 1.0
#: |battery current| above which the EV counts as charging / discharging for its SoC limits
DIRECTION_CURRENT_A = 1.0

_ORDER = list(EvPhase)


def _rank(phase: EvPhase) -> int:
    return _ORDER.index(phase)


def _num(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


@dataclass(frozen=True)
class EvccStep:
    """What the EV does this cycle.

    ``ev``: arguments for ``station.ev(connector, **ev)`` (``cp``, ``contactors``), empty when
    the vehicle stays as it is; apply them before sending ``update``. ``update``: arguments for
    ``hlc_update`` (without ``connector``), None to send nothing. ``end``: send ``hlc_end``
    afterwards.
    """

    phase: EvPhase
    update: Mapping[str, Any] | None = None
    ev: Mapping[str, Any] = field(default_factory=dict)
    end: bool = False
    changed: bool = False  # the phase differs from the previous step's


class EvccLogic:
    """One EV's ISO 15118 sequence: reports and vehicle snapshots in, decisions out (no I/O).

    ``report`` is the ``result`` of ``hlc_status`` / ``hlc_update`` (None when the daemon did
    not answer: the EV then keeps its phase and its vehicle as they are); ``vehicle`` is the
    vehicle's entry of the station snapshot (None when unplugged).
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.phase = EvPhase.NONE
        self.cp = "B"  # what the EV wants to present
        self.contactors = False  # what the EV wants its contactors to be
        self.ended = False  # hlc_end decided; waiting for a re-arm
        self.stop_reason = ""
        self._commanded: dict[str, Any] = {}  # the physical state last asked of the vehicle

    # ------------------------------------------------------------------ decision
    def step(self, report: Mapping[str, Any] | None, vehicle: Mapping[str, Any] | None) -> EvccStep:
        """The EV's next move; the caller applies ``ev``, sends ``update``, then ``end``."""
        prev = self.phase
        if vehicle is None or vehicle.get("kind") != "ccs":
            end = prev is not EvPhase.NONE and not self.ended
            self._reset()  # a new vehicle starts afresh
            return EvccStep(EvPhase.NONE, end=end, changed=prev is not EvPhase.NONE)
        if self.phase is EvPhase.NONE:
            # SLAC and SessionSetup are done; adopt the vehicle as it is (a session may run)
            self.phase = EvPhase.SESSION_SETUP
            self.cp = str(vehicle.get("cp", "B"))
            self.contactors = bool(vehicle.get("contactors_closed", False))
            self._commanded = {"cp": self.cp, "contactors": self.contactors}
        state = self._state(report)
        end = False
        if self.ended:
            if state not in (State.IDLE, State.CONNECTED, State.AUTHORIZED):
                return EvccStep(self.phase)
            self.ended = False  # re-armed: a new session
        if state is not None and report is not None:
            end = self._decide(state, report, vehicle)
        actions = {
            k: v
            for k, v in (("cp", self.cp), ("contactors", self.contactors))
            if self._commanded.get(k) != v
        }
        self._commanded.update(actions)
        update = None if end else self._update(vehicle)
        return EvccStep(self.phase, update, actions, end, self.phase is not prev)

    def invalidate(self) -> None:
        """The last physical actions may not have happened: send the whole state next step."""
        self._commanded = {}

    def _state(self, report: Mapping[str, Any] | None) -> State | None:
        if report is None:
            return None
        try:
            return State(report.get("state"))
        except ValueError:
            return None

    def _advance(self, phase: EvPhase) -> None:
        """Move forward to ``phase`` (a lagging report never sends the EV back)."""
        if _rank(phase) > _rank(self.phase):
            self.phase = phase

    def _decide(self, state: State, report: Mapping[str, Any], vehicle: Mapping[str, Any]) -> bool:
        """Update phase / cp / contactors for ``state``; True when the session is to end."""
        if state in (State.IDLE, State.CONNECTED):
            self.phase, self.cp, self.contactors = EvPhase.AUTHORIZATION, "B", False
        elif state is State.AUTHORIZED:
            self.phase, self.cp, self.contactors = EvPhase.PARAMETER_DISCOVERY, "B", False
        elif state is State.ALLOCATED:
            self.phase, self.cp = EvPhase.CABLE_CHECK, "C"
        elif state is State.CABLE_CHECK:
            self.cp = "C"
            self._advance(
                EvPhase.PRECHARGE if report.get("cable_check_done") else EvPhase.CABLE_CHECK
            )
        elif state is State.PRECHARGE:
            self.cp = "C"
            if report.get("precharge_done") or _rank(self.phase) >= _rank(
                EvPhase.POWER_DELIVERY_START
            ):
                self.contactors = True
                self._advance(EvPhase.POWER_DELIVERY_START)
            else:
                self._advance(EvPhase.PRECHARGE)
        elif state is State.ENERGY_TRANSFER:
            if _rank(self.phase) < _rank(EvPhase.POWER_DELIVERY_STOP):
                reason = self._stop_reason(report, vehicle)
                if reason:
                    self.stop_reason = reason
                    self.phase = EvPhase.POWER_DELIVERY_STOP
                else:
                    self.phase = EvPhase.CHARGE_LOOP
        elif state in (State.STOPPING, State.WELDING_DETECTION):
            if abs(_num(report.get("present_current_a"))) < STOP_CURRENT_A:
                self.contactors = False
                self._advance(EvPhase.WELDING_DETECTION)
            else:
                self._advance(EvPhase.POWER_DELIVERY_STOP)
        elif state is State.FINISHED:
            self.cp, self.contactors = "B", False
            if self.phase is EvPhase.SESSION_STOP:  # SessionStop was sent last cycle
                self.ended = True
                return True
            self.phase = EvPhase.SESSION_STOP
        elif state is State.FAULT:
            self.cp, self.contactors = "B", False
        return False

    def _stop_reason(self, report: Mapping[str, Any], vehicle: Mapping[str, Any]) -> str:
        """Why the EV wants the energy transfer to end ("" when it does not)."""
        if vehicle.get("wants_stop"):
            return "requested"
        soc = _num(vehicle.get("soc"))
        current = _num(vehicle.get("current_a"))
        if current > DIRECTION_CURRENT_A and soc >= _num(vehicle.get("target_soc"), 1.0):
            return "target_soc"
        if current < -DIRECTION_CURRENT_A and soc <= _num(vehicle.get("min_soc"), 0.0):
            return "min_soc"
        if report.get("stop_requested"):
            return "evse_stop"
        return ""

    def _update(self, vehicle: Mapping[str, Any]) -> dict[str, Any]:
        lim = vehicle.get("limits") or {}
        bpt = bool(vehicle.get("bpt"))
        battery_v = _num(vehicle.get("terminal_voltage_v"), _num(vehicle.get("ocv_v")))
        max_v = _num(lim.get("max_voltage_v"))
        max_charge_a = _num(lim.get("max_charge_current_a"))
        before_delivery = _rank(self.phase) <= _rank(EvPhase.PRECHARGE)
        return {
            "phase": self.phase.value,
            "bpt": bpt,
            "max_voltage_v": max_v,
            "min_voltage_v": _num(lim.get("min_voltage_v")),
            "max_charge_current_a": max_charge_a,
            "max_discharge_current_a": _num(lim.get("max_discharge_current_a")) if bpt else 0.0,
            "max_charge_power_w": _num(lim.get("max_charge_power_w")),
            "max_discharge_power_w": _num(lim.get("max_discharge_power_w")) if bpt else 0.0,
            # precharge to the battery; then the ceiling of a constant-current charge
            "target_voltage_v": battery_v if before_delivery else max_v,
            "target_current_a": max_charge_a,
            "present_voltage_v": battery_v,
            "soc": round(_num(vehicle.get("soc")) * 100.0, 3),  # percent, as ISO 15118
            "contactors_closed": self.contactors,
        }


class VirtualEvcc:
    """Runs :class:`EvccLogic` for every CCS vehicle of ``station`` against the daemon at
    ``control_endpoint``, in a daemon thread, every ``period_s``.

    Nothing the daemon or the station does escapes the thread: a refused or unanswered
    request is logged (a warning the first time a connector gets that error, then debug)
    and the next cycle tries again.
    """

    def __init__(
        self,
        station: VirtualStation,
        control_endpoint: str,
        period_s: float = 0.1,
        timeout_s: float = 1.0,
    ) -> None:
        if not 0 < period_s <= 0.25:
            raise ValueError("period_s must be within (0, 0.25] s: hlc data goes stale")
        self.station = station
        self.period_s = period_s
        self.client = Client(control_endpoint, timeout_s=timeout_s)
        self.evs: dict[str, EvccLogic] = {}
        self.reports: dict[str, Mapping[str, Any]] = {}  # the daemon's last answer per connector
        self.cycles = 0
        self._errors: dict[tuple[str, str], str] = {}  # (connector, cmd) -> last error code
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> VirtualEvcc:
        if self._thread is not None:
            raise RuntimeError("virtual EVCC already started")
        self._thread = threading.Thread(target=self._run, name="bptd-evcc", daemon=True)
        self._thread.start()
        log.info("evcc_started", endpoint=self.client.endpoint, period_s=self.period_s)
        return self

    def close(self) -> None:
        """Stop the thread and close the client (the thread closes it if it is still busy)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.client.timeout_s * 3 + self.period_s + 1.0)
            if thread.is_alive():  # inside a request: it closes the client when it returns
                log.warning("evcc_thread_still_busy")
                return
        self.client.close()
        log.info("evcc_stopped")

    def __enter__(self) -> VirtualEvcc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def phase(self, connector: str) -> EvPhase:
        """The EV phase at ``connector`` (``none``: no CCS session)."""
        ev = self.evs.get(connector)
        return ev.phase if ev is not None else EvPhase.NONE

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.cycle()
                except Exception:
                    log.exception("evcc_cycle_failed")
                self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))
        finally:
            self.client.close()

    def cycle(self) -> None:
        """One pass over the connectors (what the thread does every period)."""
        snap = self.station.snapshot()
        for connector, c in (snap.get("connectors") or {}).items():
            if self._stop.is_set():
                break
            vehicle = c.get("vehicle")
            ccs = vehicle is not None and vehicle.get("kind") == "ccs"
            if not ccs:
                ev = self.evs.pop(connector, None)
                if ev is not None:  # unplugged (or a CHAdeMO vehicle now): the session is over
                    step = ev.step(None, None)
                    if step.changed:
                        log.info("evcc_phase", connector=connector, phase=step.phase.value)
                    if step.end:
                        self._call(connector, "hlc_end")
                    self.reports.pop(connector, None)
                    for key in [k for k in self._errors if k[0] == connector]:
                        del self._errors[key]
                continue
            self._serve(connector, vehicle)
        self.cycles += 1

    def _serve(self, connector: str, vehicle: Mapping[str, Any]) -> None:
        ev = self.evs.setdefault(connector, EvccLogic())
        report = self._call(connector, "hlc_status")
        if report is None:
            if self._errors.get((connector, "hlc_status")) == ErrorCode.TIMEOUT:
                return  # the daemon is not there: no point waiting on the update as well
            report = self.reports.get(connector)
        else:
            self.reports[connector] = report
        step = ev.step(report, vehicle)
        if step.changed:
            log.info("evcc_phase", connector=connector, phase=step.phase.value)
            if step.phase is EvPhase.POWER_DELIVERY_STOP and ev.stop_reason:
                log.info("evcc_stop", connector=connector, reason=ev.stop_reason)
        if step.ev:
            try:
                self.station.ev(connector, **step.ev)
            except Exception as exc:  # unplugged meanwhile, or the station is gone
                ev.invalidate()
                log.warning("evcc_vehicle_action_failed", connector=connector, error=str(exc))
                return
        if step.update is not None:
            reply = self._call(connector, "hlc_update", **step.update)
            if reply is not None:
                self.reports[connector] = reply
        if step.end:
            self._call(connector, "hlc_end")

    def _call(self, connector: str, cmd: str, **args: Any) -> Any:
        """``cmd`` for ``connector``; None (logged) when refused or unanswered."""
        try:
            result = self.client.call(cmd, connector=connector, **args)
        except ApiError as exc:
            code = str(exc.code)
            first = self._errors.get((connector, cmd)) != code
            self._errors[(connector, cmd)] = code
            (log.warning if first else log.debug)(
                "evcc_request_failed",
                connector=connector,
                cmd=cmd,
                code=code,
                message=exc.message,
            )
            return None
        except Exception:  # a broken reply must not end the thread either
            self._errors[(connector, cmd)] = ErrorCode.INTERNAL
            log.warning("evcc_request_failed", connector=connector, cmd=cmd, exc_info=True)
            return None
        if self._errors.pop((connector, cmd), None) is not None:
            log.info("evcc_daemon_answers", connector=connector, cmd=cmd)
        return result if isinstance(result, Mapping) or cmd == "hlc_end" else None
