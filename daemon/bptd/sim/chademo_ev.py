"""The virtual CHAdeMO vehicle ECU: the vehicle side of a CHAdeMO connector's own bus.

:class:`VirtualChademoEv` serves the vehicle plugged at one connector of the virtual station
when its kind is ``chademo`` (e.g. the ``chademo_v2h`` preset, LEAF-like): it sends 0x100,
0x101, 0x102 and, when V2H capable, 0x200 every 100 ms from the vehicle's battery model and
limits, follows the charger's 0x108 / 0x109 / 0x208 and the d1 / d2 levels (the harness
frame, :mod:`bptd.chademo.pins`), and moves the vehicle only through the station's ``ev``
action: CP C stands for k (charge permission), CP B for no permission; ``contactors`` are its
own. CCS vehicles are left to the virtual EVCC.

:class:`ChademoEvLogic` is the decision without I/O:

=========  ==========================================================================
stage      vehicle
=========  ==========================================================================
asleep     d1 low: silent, CP B, contactors open
awake      d1 high: frames with 102.5.0 = 0; compatibility check on 0x108 (its target
           voltage within the charger's available voltage, 109.5.3 clear)
permitted  102.5.0 = 1 and k (CP C); waits for d2 with the inlet below 10 V
closed     contactors closed (102.5.3 = 0); current request 0x102.3 = min(own limits,
           108.3), discharge allowance 0x200.0 from its limits above its minimum SoC,
           both changed at most ``ramp_a_per_s``; stops at its target SoC, on the
           driver's ``stop`` (``ev`` action) or an injected condition (102.5.4 / flags)
stopping   request 0; opens its contactors once the charger shows 109.5.0 = 0 and
           under 5 A (or d2 fell, or the charger went silent)
welding    its welding detection: inlet voltage after opening, <= 25 % within 1 s and
           <= 10 V within 2 s (IEEE 2030.1.1 A.10.2.1 as cited); then 102.5.3 = 1,
           102.5.0 = 0, k off
done       frames continue until d1 falls
=========  ==========================================================================

Fault injection (:meth:`VirtualChademoEv.inject`): the 102.4 fault flags, ``shift_lever``,
``system_fault``, ``stop_request``, ``permission_off`` (102.5.0 only), ``k_off`` (the k line
only), ``target_voltage_zero``, ``silent`` (no frames at all).
"""

from __future__ import annotations

import enum
import math
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import can
import structlog

from bptd.canbus import BusSpec, parse_bus_spec
from bptd.chademo import frames as fr
from bptd.chademo.pins import HARNESS_FRAME_ID, HARNESS_TIMEOUT_S, harness_levels
from bptd.sim.station import VirtualStation
from bptd.sim.vehicle import VehicleSpec

log = structlog.get_logger(__name__)

#: injectable conditions -> the 0x102 signal they set (None: handled by the logic)
INJECTIONS: dict[str, str | None] = {
    "battery_overvoltage": "FaultBatteryOvervoltage",
    "battery_undervoltage": "FaultBatteryUndervoltage",
    "current_deviation": "FaultBatteryCurrentDeviation",
    "high_temperature": "FaultHighBatteryTemperature",
    "voltage_deviation": "FaultBatteryVoltageDeviation",
    "shift_lever": "StatusShiftNotInPark",
    "system_fault": "StatusSystemFault",
    "stop_request": "StatusNormalStopRequest",
    "permission_off": None,
    "k_off": None,
    "target_voltage_zero": None,
    "silent": None,
}
#: conditions after which the vehicle itself wants the session to end
_STOPPING_KINDS = frozenset(INJECTIONS) - {"k_off", "silent"}

DEAD_V = 10.0  # CHAdeMO: a dead output
CHARGER_TIMEOUT_S = 1.0  # the charger's frames missing this long: it is gone
STOP_CURRENT_A = 5.0  # the charger's current below this before the contactors open
DEVIATION_A = 10.0  # 102.4.2: more than the request by this much ...
DEVIATION_S = 5.0  # ... for this long (as the chademo-rs comment cites)
PERMISSION_DELAY_S = 0.3  # from the charger's first frames to permission
OPEN_TIMEOUT_S = 10.0  # the charger never clears 109.5.0: open anyway
MAX_CHARGE_TIME_S = 90 * 60.0  # 101.2: what the vehicle allows (a LEAF-like 90 min)


class EvStage(enum.StrEnum):
    ASLEEP = "asleep"
    AWAKE = "awake"
    PERMITTED = "permitted"
    CLOSED = "closed"
    STOPPING = "stopping"
    WELDING = "welding"
    DONE = "done"


@dataclass
class WeldingCheck:
    """The vehicle's welding detection: the inlet voltage after it opened its contactors."""

    opened_at: float
    voltage_v: float  # at the opening
    at_1s_v: float | None = None
    below_10v_after_s: float | None = None

    @property
    def met(self) -> bool | None:
        """<= 25 % within 1 s and <= 10 V within 2 s (None: not decided yet)."""
        b = self.below_10v_after_s
        if b is not None and b <= 2.0:
            return b <= 1.0 or self.at_1s_v is None or self.at_1s_v <= 0.25 * self.voltage_v
        if b is not None or (self.at_1s_v is not None and self.at_1s_v > 0.25 * self.voltage_v):
            return False
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "voltage_v": round(self.voltage_v, 2),
            "at_1s_v": None if self.at_1s_v is None else round(self.at_1s_v, 2),
            "below_10v_after_s": (
                None if self.below_10v_after_s is None else round(self.below_10v_after_s, 3)
            ),
            "met": self.met,
        }


@dataclass(frozen=True)
class EvStep:
    """The vehicle's move this cycle: frames to send, ``ev`` action arguments (changes only)."""

    stage: EvStage
    frames: tuple[tuple[int, Mapping[str, float]], ...] = ()
    ev: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, str], ...] = ()


def target_voltage_v(spec: VehicleSpec) -> float:
    """102.1-2: a little above the full battery's open-circuit voltage (a LEAF asks 410 V
    over about 403 V), never above its maximum battery voltage."""
    return round(min(spec.max_voltage_v, spec.ocv(1.0) + 7.0))


class ChademoEvLogic:
    """One CHAdeMO vehicle's ECU (no I/O); see the module text."""

    def __init__(self, ramp_a_per_s: float = 20.0) -> None:
        self.ramp_a_per_s = ramp_a_per_s
        self.injected: set[str] = set()
        self.welding_history: list[WeldingCheck] = []  # every welding detection, oldest first
        self._spec: VehicleSpec | None = None
        self._reset()

    def _reset(self) -> None:
        self.stage = EvStage.ASLEEP
        self.since = 0.0
        self.woke_at = 0.0
        self.request_a = 0.0
        self.allowance_a = 0.0
        self.stop_request = False
        self.stop_reason = ""
        self.charger_seen_at: float | None = None
        self.charger_charging_seen = False
        self.deviation_since: float | None = None
        self.welding: WeldingCheck | None = None
        self.cp = "B"
        self.contactors = False
        self._commanded: dict[str, Any] = {}
        self._last = 0.0
        self._events: list[tuple[str, str]] = []

    def invalidate(self) -> None:
        """The last ``ev`` action may not have happened: send the whole state next step."""
        self._commanded = {}

    # ------------------------------------------------------------------ step
    def step(
        self,
        now: float,
        spec: VehicleSpec | None,
        vehicle: Mapping[str, Any] | None,
        inlet_v: float,
        charger: Mapping[int, fr.Received],
        d1: bool,
        d2: bool,
    ) -> EvStep:
        """``spec`` / ``vehicle``: the plugged vehicle and its snapshot (None: nothing, or
        not a CHAdeMO vehicle); ``charger``: the charger's last frames by identifier."""
        if spec is None or vehicle is None or spec.kind != "chademo":
            if self._spec is not None:
                self._spec = None
                self.injected.clear()
                self._reset()
            return EvStep(EvStage.ASLEEP)
        if spec is not self._spec:  # a new plug: a new vehicle
            self._spec = spec
            self.injected.clear()
            self._reset()
            self.cp = str(vehicle.get("cp", "B"))
            self.contactors = bool(vehicle.get("contactors_closed", False))
            self._commanded = {"cp": self.cp, "contactors": self.contactors}
        dt = min(max(now - self._last, 0.0), 0.25) if self._last else 0.0
        self._last = now
        if not d1:
            if self.stage is not EvStage.ASLEEP:
                self._enter(now, EvStage.ASLEEP, "d1 low")
                self.request_a = self.allowance_a = 0.0
            self.cp, self.contactors = "B", False
            return self._out(spec, vehicle, send=False)
        if self.stage is EvStage.ASLEEP:
            self.woke_at = now
            self.stop_request, self.stop_reason = False, ""
            self.charger_seen_at = None
            self.charger_charging_seen = False
            self.welding = None
            self.deviation_since = None
            self._enter(now, EvStage.AWAKE, "d1 high")
        ch = {fid: r for fid, r in charger.items() if r.at >= self.woke_at}
        status = ch.get(fr.EVSE_STATUS)
        if status is not None and self.charger_seen_at is None:
            self.charger_seen_at = now
        getattr(self, f"_on_{self.stage.value}")(now, dt, spec, vehicle, inlet_v, ch, d2)
        return self._out(spec, vehicle, send="silent" not in self.injected)

    def _enter(self, now: float, stage: EvStage, detail: str = "") -> None:
        self._events.append(("stage", f"{self.stage.value} -> {stage.value}" +
                             (f": {detail}" if detail else "")))  # fmt: skip
        self.stage = stage
        self.since = now

    def _want_stop(self, now: float, vehicle: Mapping[str, Any], charging: bool) -> str:
        if self.injected & _STOPPING_KINDS:
            return "injected " + ", ".join(sorted(self.injected & _STOPPING_KINDS))
        if vehicle.get("wants_stop"):
            return "driver stop"
        soc = _num(vehicle.get("soc"))
        if charging and soc >= _num(vehicle.get("target_soc"), 1.0):
            return "target SoC"
        return ""

    def _charger_stopped(self, now: float, ch: Mapping[int, fr.Received], d2: bool) -> str:
        status = ch.get(fr.EVSE_STATUS)
        if status is None or now - status.at > CHARGER_TIMEOUT_S:
            return "charger frames missing"
        for name in ("StatusMalfunction", "StatusSystemMalfunction", "StatusBatteryIncompatible"):
            if status.flag(name):
                return f"charger {name}"
        if status.flag("StatusCharging"):
            self.charger_charging_seen = True
        elif self.charger_charging_seen:
            return "charger stopped charging"
        if self.charger_charging_seen and status.flag("StatusStopControl"):
            return "charger stop control"
        if self.stage is EvStage.CLOSED and not d2:
            return "d2 low"
        return ""

    # ------------------------------------------------------------------ stages
    def _on_awake(self, now, dt, spec, vehicle, inlet_v, ch, d2) -> None:  # type: ignore[no-untyped-def]
        if reason := self._want_stop(now, vehicle, False):
            self.stop_request, self.stop_reason = True, reason
            return self._enter(now, EvStage.DONE, reason)
        cap = ch.get(fr.EVSE_CAPABILITY)
        status = ch.get(fr.EVSE_STATUS)
        if cap is None or status is None:
            if now - self.since > 5.0 and self.charger_seen_at is None:
                self._events.append(("waiting", "no charger frames after d1"))
                self.since = now
            return None
        if status.flag("StatusBatteryIncompatible"):
            self.stop_reason = "charger: battery incompatible"
            return self._enter(now, EvStage.DONE, self.stop_reason)
        available = cap.get("AvailableOutputVoltage")
        if available < target_voltage_v(spec):
            self.stop_reason = f"charger offers {available:.0f} V only"
            return self._enter(now, EvStage.DONE, self.stop_reason)
        if now - (self.charger_seen_at or now) >= PERMISSION_DELAY_S:
            self.cp = "C"
            self._enter(now, EvStage.PERMITTED, "charge permission, k on")
        return None

    def _on_permitted(self, now, dt, spec, vehicle, inlet_v, ch, d2) -> None:  # type: ignore[no-untyped-def]
        reason = self._want_stop(now, vehicle, False)
        if reason:
            self.stop_request = True
        else:
            reason = self._charger_stopped(now, ch, d2)
        if reason:
            self.stop_reason, self.cp = reason, "B"
            return self._enter(now, EvStage.DONE, reason)
        self.cp = "C"
        if d2 and inlet_v < DEAD_V:
            self.contactors = True
            self._enter(now, EvStage.CLOSED, f"d2 high, inlet {inlet_v:.0f} V: contactors closed")
        return None

    def _on_closed(self, now, dt, spec, vehicle, inlet_v, ch, d2) -> None:  # type: ignore[no-untyped-def]
        status = ch.get(fr.EVSE_STATUS)
        present = status.get("PresentOutputCurrent") if status is not None else 0.0
        charging = _num(vehicle.get("current_a")) > 1.0
        reason = self._want_stop(now, vehicle, charging)
        if reason:
            self.stop_request = True
        else:
            reason = self._charger_stopped(now, ch, d2)
        if not reason and present > self.request_a + DEVIATION_A:
            self.deviation_since = self.deviation_since or now
            if now - self.deviation_since >= DEVIATION_S:
                self.injected.add("current_deviation")
                reason = f"current deviation: {present:.0f} A, request {self.request_a:.0f} A"
        else:
            self.deviation_since = None
        if reason:
            self.stop_reason = reason
            self.request_a = self.allowance_a = 0.0
            return self._enter(now, EvStage.STOPPING, reason)
        volts = max(_num(vehicle.get("terminal_voltage_v")), 1.0)
        lim = vehicle.get("limits") or {}
        cap = ch.get(fr.EVSE_CAPABILITY)
        offered = cap.get("AvailableOutputCurrent") if cap is not None else 0.0
        want = min(
            _num(lim.get("max_charge_current_a")),
            _num(lim.get("max_charge_power_w")) / volts,
            offered,
        )
        if _num(vehicle.get("soc")) >= _num(vehicle.get("target_soc"), 1.0):
            want = 0.0
        allow = 0.0
        v2h = status is not None and status.flag("DischargeCompatible") and spec.bpt
        if v2h and _num(vehicle.get("soc")) > _num(vehicle.get("min_soc")):
            allow = min(
                _num(lim.get("max_discharge_current_a")),
                _num(lim.get("max_discharge_power_w")) / volts,
            )
        step = self.ramp_a_per_s * dt
        self.request_a += max(-step, min(step, want - self.request_a))
        self.allowance_a += max(-step, min(step, allow - self.allowance_a))
        return None

    def _on_stopping(self, now, dt, spec, vehicle, inlet_v, ch, d2) -> None:  # type: ignore[no-untyped-def]
        self.request_a = self.allowance_a = 0.0
        status = ch.get(fr.EVSE_STATUS)
        silent = status is None or now - status.at > CHARGER_TIMEOUT_S
        quiet = False
        if status is not None and not silent:
            discharge = ch.get(fr.EVSE_DISCHARGE_CAPABILITY)
            out = status.get("PresentOutputCurrent")
            back = discharge.get("PresentDischargeCurrent") if discharge is not None else 0.0
            quiet = not status.flag("StatusCharging") and max(out, back) < STOP_CURRENT_A
        if quiet or silent or not d2 or now - self.since > OPEN_TIMEOUT_S:
            self.contactors = False
            self.welding = WeldingCheck(now, inlet_v)
            why = "charger stopped" if quiet else "charger silent" if silent else (
                "d2 low" if not d2 else "timeout")  # fmt: skip
            self._enter(now, EvStage.WELDING, f"{why}: contactors open at {inlet_v:.0f} V")
        return None

    def _on_welding(self, now, dt, spec, vehicle, inlet_v, ch, d2) -> None:  # type: ignore[no-untyped-def]
        w = self.welding
        assert w is not None
        elapsed = now - w.opened_at
        if w.at_1s_v is None and elapsed >= 1.0:
            w.at_1s_v = inlet_v
        if w.below_10v_after_s is None and inlet_v <= DEAD_V:
            w.below_10v_after_s = elapsed
        if w.below_10v_after_s is not None or elapsed > 2.0:
            self.cp = "B"
            result = "met" if w.met else "NOT met"
            self._events.append(("welding_check", f"{result}: {w.as_dict()}"))
            self.welding_history.append(w)
            self._enter(now, EvStage.DONE, "welding detection finished")
        return None

    def _on_done(self, now, dt, spec, vehicle, inlet_v, ch, d2) -> None:  # type: ignore[no-untyped-def]
        self.cp, self.contactors = "B", False

    # ------------------------------------------------------------------ output
    def _out(self, spec: VehicleSpec, vehicle: Mapping[str, Any], send: bool) -> EvStep:
        if "k_off" in self.injected:
            self.cp = "B"
        wanted = {"cp": self.cp, "contactors": self.contactors}
        actions = {k: v for k, v in wanted.items() if self._commanded.get(k) != v}
        self._commanded.update(actions)
        events, self._events = tuple(self._events), []
        frames = self._frames(spec, vehicle) if send and self.stage is not EvStage.ASLEEP else ()
        return EvStep(self.stage, frames, actions, events)

    def _frames(
        self, spec: VehicleSpec, vehicle: Mapping[str, Any]
    ) -> tuple[tuple[int, Mapping[str, float]], ...]:
        soc = _num(vehicle.get("soc"))
        st = self.stage
        enabled = st in (EvStage.PERMITTED, EvStage.CLOSED, EvStage.STOPPING, EvStage.WELDING)
        if "permission_off" in self.injected:
            enabled = False
        closed = st in (EvStage.CLOSED, EvStage.STOPPING, EvStage.WELDING)
        target = 0.0 if "target_voltage_zero" in self.injected else target_voltage_v(spec)
        power = min(spec.max_charge_power_w, spec.max_charge_current_a * spec.ocv(soc))
        remaining_s = max(0.0, spec.target_soc - soc) * spec.capacity_wh / max(power, 1.0) * 3600
        flags = {INJECTIONS[k]: 1 for k in self.injected if INJECTIONS[k] is not None}
        out: list[tuple[int, Mapping[str, float]]] = [
            (fr.EV_CHARGE_LIMITS, {
                "MinChargeCurrent": 0,
                "MinBatteryVoltage": spec.min_voltage_v,
                "MaxBatteryVoltage": spec.max_voltage_v,
                "ChargedRateConstant": 100,
            }),
            (fr.EV_CHARGE_TIME, {
                "MaxChargeTime10s": 2550.0,  # 0xFF: use the minutes
                "MaxChargeTime1min": MAX_CHARGE_TIME_S,
                "EstChargeTime1min": min(remaining_s, 255 * 60.0),
                "RatedBatteryCapacity": spec.capacity_wh / 1000.0,
            }),
            (fr.EV_STATUS, {
                "ProtocolNumber": 2,
                "TargetBatteryVoltage": target,
                "ChargeCurrentRequest": round(self.request_a),
                "StatusChargingEnabled": int(enabled),
                "StatusContactorOpen": int(not closed),
                "StatusNormalStopRequest": int(self.stop_request),
                "StatusDischargeCompatible": int(spec.bpt),
                "ChargedRate": round(soc * 100.0),
                **flags,
            }),
        ]  # fmt: skip
        if spec.bpt:
            out.append((fr.EV_DISCHARGE_LIMITS, {
                "MaxDischargeCurrent": math.floor(self.allowance_a),
                "MinDischargeVoltage": spec.min_voltage_v,
                "MinBatteryDischargeLevel": round(spec.min_soc * 100.0),
                "MaxRemainingCapacityForCharging": round(spec.target_soc * 100.0),
            }))  # fmt: skip
        return tuple(out)


def _num(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


class VirtualChademoEv:
    """Runs :class:`ChademoEvLogic` for the vehicle at ``connector`` of ``station`` on the
    CHAdeMO ``bus``, in a daemon thread, every 100 ms.

    ``connector`` defaults to the station's first connector of kind ``chademo``.
    """

    def __init__(
        self,
        station: VirtualStation,
        bus: can.BusABC | BusSpec | str,
        connector: str | None = None,
        ramp_a_per_s: float = 20.0,
    ) -> None:
        self.station = station
        if connector is None:
            connector = chademo_connector(station)
            if connector is None:
                raise ValueError("the station has no connector of kind 'chademo'")
        self.connector = connector
        if isinstance(bus, str):
            bus = parse_bus_spec(bus)
        self._own_bus = isinstance(bus, BusSpec)
        self.bus: can.BusABC = bus.open() if isinstance(bus, BusSpec) else bus
        self.logic = ChademoEvLogic(ramp_a_per_s)
        self.period_s = fr.PERIOD_S
        self.charger: dict[int, fr.Received] = {}
        self.pins = (False, False)
        self.pins_at = -math.inf
        self.cycles = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> VirtualChademoEv:
        if self._thread is not None:
            raise RuntimeError("virtual CHAdeMO vehicle already started")
        self._thread = threading.Thread(target=self._run, name="bptd-chademo-ev", daemon=True)
        self._thread.start()
        log.info("chademo_ev_started", connector=self.connector, bus=str(self.bus.channel_info))
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._own_bus:
            self.bus.shutdown()
        log.info("chademo_ev_stopped", connector=self.connector)

    def __enter__(self) -> VirtualChademoEv:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ control
    def inject(self, kind: str) -> None:
        """Set an injectable condition (see :data:`INJECTIONS`) on the plugged vehicle."""
        if kind not in INJECTIONS:
            raise ValueError(f"unknown condition {kind!r}; conditions: {', '.join(INJECTIONS)}")
        with self._lock:
            self.logic.injected.add(kind)
        log.info("chademo_ev_injected", connector=self.connector, kind=kind)

    def clear(self, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self.logic.injected.clear()
            else:
                self.logic.injected.discard(kind)

    @property
    def stage(self) -> EvStage:
        return self.logic.stage

    def status(self) -> dict[str, Any]:
        lg = self.logic
        return {
            "connector": self.connector,
            "stage": lg.stage.value,
            "request_a": round(lg.request_a, 2),
            "allowance_a": round(lg.allowance_a, 2),
            "stop_reason": lg.stop_reason,
            "injected": sorted(lg.injected),
            "d1": self.pins[0],
            "d2": self.pins[1],
            "welding": lg.welding.as_dict() if lg.welding else None,
        }

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            try:
                self.cycle(time.monotonic())
            except Exception:
                log.exception("chademo_ev_cycle_failed", connector=self.connector)
            deadline += self.period_s
            delay = deadline - time.monotonic()
            if delay < -self.period_s:
                deadline = time.monotonic()
                delay = 0.0
            self._stop.wait(max(0.0, delay))

    def cycle(self, now: float) -> EvStep:
        """One 100 ms cycle (what the thread does)."""
        self._drain(now)
        d1, d2 = self.pins if now - self.pins_at <= HARNESS_TIMEOUT_S else (False, False)
        snap = (self.station.snapshot().get("connectors") or {}).get(self.connector) or {}
        chipset = self.station.plant.chipsets.get(self.connector)
        plugged = chipset.vehicle if chipset is not None else None
        spec = plugged.spec if plugged is not None else None
        vehicle = snap.get("vehicle")
        with self._lock:
            step = self.logic.step(
                now, spec, vehicle, _num(snap.get("inlet_voltage_v")), self.charger, d1, d2
            )
        for kind, detail in step.events:
            log.info(f"chademo_ev_{kind}", connector=self.connector, detail=detail)
        if step.ev:
            try:
                self.station.ev(self.connector, **step.ev)
            except Exception as exc:  # unplugged meanwhile, or the station is gone
                self.logic.invalidate()
                log.warning("chademo_ev_action_failed", connector=self.connector, error=str(exc))
        for frame_id, values in step.frames:
            try:
                self.bus.send(fr.encode(frame_id, values))
            except can.CanError as exc:
                log.warning("chademo_ev_send_failed", connector=self.connector, error=str(exc))
        self.cycles += 1
        return step

    def _drain(self, now: float) -> None:
        while True:
            try:
                msg = self.bus.recv(0)
            except can.CanError:
                return
            if msg is None:
                return
            if msg.is_error_frame or msg.is_remote_frame:
                continue
            if msg.arbitration_id == HARNESS_FRAME_ID:
                self.pins, self.pins_at = harness_levels(msg.data), now
            elif msg.arbitration_id in fr.CHARGER_IDS:
                values = fr.decode(msg.arbitration_id, msg.data)
                if values is not None:
                    self.charger[msg.arbitration_id] = fr.Received(values, now)


def chademo_connector(station: VirtualStation) -> str | None:
    """The station's first connector of kind ``chademo`` (None: it has none)."""
    for c in station.config.connectors:
        if c.kind == "chademo":
            return c.name
    return None


class VirtualChademo:
    """The CHAdeMO connector of an in-process virtual station, complete: the virtual vehicle
    ECU and the charger driver (:class:`~bptd.chademo.ChademoCharger`) on a private
    ``virtual`` CHAdeMO bus, the driver reporting to the daemon at ``control_endpoint``."""

    def __init__(
        self, station: VirtualStation, control_endpoint: str, connector: str | None = None
    ) -> None:
        from bptd.chademo import ChademoCharger

        connector = connector or chademo_connector(station)
        if connector is None:
            raise ValueError("the station has no connector of kind 'chademo'")
        self.connector = connector
        self.bus_spec = parse_bus_spec(f"virtual:bptd-chademo-{uuid.uuid4().hex[:12]}")
        self.ev = VirtualChademoEv(station, self.bus_spec, connector)
        self.charger = ChademoCharger(
            self.bus_spec, control_endpoint, connector, pins="harness", timeout_s=0.5
        )

    def start(self) -> VirtualChademo:
        self.ev.start()
        self.charger.start()
        return self

    def close(self) -> None:
        self.charger.close()
        self.ev.close()


def start_virtual_chademo(
    station: VirtualStation, control_endpoint: str, connector: str | None = None
) -> VirtualChademo | None:
    """Start :class:`VirtualChademo` for ``station`` (None: the station has no CHAdeMO
    connector)."""
    if (connector or chademo_connector(station)) is None:
        return None
    return VirtualChademo(station, control_endpoint, connector).start()
