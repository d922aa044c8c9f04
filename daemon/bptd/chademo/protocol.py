"""The charger side of CHAdeMO as a pure state machine.

:class:`ChargerProtocol` knows nothing of CAN, sockets or clocks. Every cycle (100 ms) the
driver passes ``now``, the last frame of each vehicle identifier (decoded, with its arrival
time) and the daemon's last ``hlc`` report; :meth:`ChargerProtocol.step` returns what to do:
the d1 / d2 levels, the charger frames to send (0x108, 0x109, 0x208, 0x209: physical signal
values by DBC name), the ``hlc_update`` fields (or None: only ``hlc_status``) and whether to
send ``hlc_end`` afterwards.

The CHAdeMO sequence is mapped onto the session's EV phases (docs/chademo.md):

==================  =================================================  =======================
stage               charger                                            EV phase (hlc_update)
==================  =================================================  =======================
idle                d1 off, silent; waits for ``authorized``           (hlc_status only)
wake                d1 on, charger frames; waits for 0x100 + 0x102     (hlc_status only)
parameter_exchange  compatibility check, waits for charge permission   parameter_discovery;
                    (102.5.0)                                          cable_check once given
insulation_test     the session's cable check (IMD at test voltage)    cable_check
precharge           output brought below 10 V, then d2 on              precharge (no target)
ev_contactors       waits for the vehicle's contactors (102.5.3 = 0)   precharge (no target)
voltage_match       output regulated to the battery voltage now at     precharge (target =
                    the inlet, then power delivery                     inlet voltage), then
                                                                       power_delivery_start
energy_transfer     109.5.0 = 1, 109.5.5 = 0; current inside the       charge_loop
                    vehicle's request (0x102) and V2H allowance (0x200)
stopping            109.5.5 = 1; 109.5.0 = 0 once the session has      power_delivery_stop,
                    ramped down and opened; the vehicle's welding      welding_detection once
                    detection                                          its contactors are open
release             d2 off; output <= 10 V; d1 off 0.5 s after d2      welding_detection, then
                                                                       session_stop + hlc_end
ended               silent; waits until the session moves on           (hlc_status only)
==================  =================================================  =======================

Stops from the vehicle: 0x102 missing for more than ``vehicle_timeout_s``, any 102.4 fault
flag, 102.5.1 (shift lever), 102.5.2 (system fault), 102.5.4 (stop request), 102.5.0
withdrawn, target voltage 0, the output above the threshold voltage. From the station: the
session leaving the state this stage expects (``stop`` command, fault, k / CP lost), the
daemon not answering for ``daemon_timeout_s``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bptd.chademo import frames as fr
from bptd.chademo.frames import Received
from bptd.session.states import EvPhase, FaultReason, State


class Stage(enum.StrEnum):
    IDLE = "idle"
    WAKE = "wake"
    PARAMETERS = "parameter_exchange"
    INSULATION = "insulation_test"
    PRECHARGE = "precharge"
    CONTACTORS = "ev_contactors"
    MATCH = "voltage_match"
    TRANSFER = "energy_transfer"
    STOPPING = "stopping"
    RELEASE = "release"
    ENDED = "ended"


#: stages with a vehicle session on CAN (its frames are expected)
_TALKING = frozenset(
    {Stage.PARAMETERS, Stage.INSULATION, Stage.PRECHARGE, Stage.CONTACTORS, Stage.MATCH,
     Stage.TRANSFER}
)  # fmt: skip
#: session states in which the charger may start a CHAdeMO session (the user has authorized)
_READY = frozenset({State.AUTHORIZED, State.ALLOCATED})
#: session states in which the connector is locked
_LOCKED = frozenset(
    {State.AUTHORIZED, State.ALLOCATED, State.CABLE_CHECK, State.PRECHARGE,
     State.ENERGY_TRANSFER, State.STOPPING, State.WELDING_DETECTION}
)  # fmt: skip
#: session faults on the vehicle / cable side (109.5.4 charging-system malfunction); the
#: others are the charger's own (109.5.1 charger malfunction)
_SYSTEM_FAULTS = frozenset(
    {FaultReason.INSULATION_FAULT, FaultReason.EV_LIMITS_VIOLATED, FaultReason.EV_TIMEOUT,
     FaultReason.PRECHARGE_TIMEOUT, FaultReason.WELDING_DETECTED, FaultReason.CP_LOST,
     FaultReason.EV_UNPLUGGED}
)  # fmt: skip


@dataclass(frozen=True)
class ChademoConfig:
    """Timings and thresholds; each says where its number comes from."""

    protocol_number: int = 2  # 109.0: CHAdeMO 1.0.x (what the V2H vehicles speak)
    v2h: bool = True  # the station can discharge (bidirectional modules): 109.4.0, 0x208
    vehicle_timeout_s: float = 1.0  # 0x102 missing this long stops the charger (the 1 s
    #   a public charger-side implementation applies; the standard's text is not public)
    wake_timeout_s: float = 5.0  # bptd default: first vehicle frames after d1
    permission_timeout_s: float = 20.0  # charge permission after the first frames (the
    #   20 s the same implementation waits for "car ready to charge")
    contactor_timeout_s: float = 5.0  # vehicle contactors after d2 (cited: at most 4 s)
    welding_wait_s: float = 10.0  # vehicle welding detection after 109.5.0 = 0 (cited: the
    #   vehicle performs it within 4 s; 10 s as the same implementation waits)
    stop_wait_s: float = 15.0  # bptd default: the session's ramp down (its own stop
    #   timeout is 5 s) before the charger releases anyway
    dead_output_v: float = 10.0  # CHAdeMO: output below 10 V before d2 and before release
    battery_seen_v: float = 50.0  # bptd default: inlet voltage that shows the battery
    #   after the vehicle closed its contactors (a dead output is below 10 V)
    release_timeout_s: float = 5.0  # bptd default: waiting for <= 10 V before d1 off
    d1_after_d2_s: float = 0.5  # d1 falls at least 0.5 s after d2 (cited from the spec)
    daemon_timeout_s: float = 2.0  # = api.hlc_timeout_s: the daemon's answer is stale
    min_discharge_voltage_v: float = 250.0  # 208.6-7: BMPU discharge window (HARDWARE.md)
    undersupply_a: float = 10.0  # 108.3 in the transfer: what flows + this (the margin a
    #   public charger-side implementation keeps so the vehicle's request stays near the
    #   current; vehicles fault on a larger deviation)


@dataclass(frozen=True)
class Output:
    """What the charger does this cycle."""

    stage: Stage
    d1: bool
    d2: bool
    #: charger frames (identifier, physical signal values); empty while d1 is off
    frames: tuple[tuple[int, Mapping[str, float]], ...] = ()
    #: ``hlc_update`` arguments (without ``connector``); None: nothing to report
    hlc: Mapping[str, Any] | None = None
    #: send ``hlc_end`` after the update (the session is over for the vehicle side)
    end: bool = False
    #: (kind, detail) of what happened this cycle, for the log
    events: tuple[tuple[str, str], ...] = ()


@dataclass
class _Session:
    """What one CHAdeMO session remembers (reset at every wake)."""

    woke_at: float = 0.0
    frames_at: float | None = None  # first 0x100 + 0x102 of this session
    available_v: float = 0.0  # 108.1-2, fixed after the first frame
    permitted: bool = False  # 102.5.0 seen at 1
    target_seen: bool = False  # 102.1-2 seen above 0
    ev_closed_seen: bool = False  # 102.5.3 seen at 0 (contactors closed)
    battery_v: float = 0.0  # inlet voltage once the vehicle closed its contactors
    transferring: bool = False  # energy transfer reached
    charging: bool = False  # 109.5.0
    flag_cleared_at: float | None = None  # 109.5.0 at 0 for good (stopping)
    incompatible: bool = False
    malfunction: bool = False  # 109.5.1
    system_malfunction: bool = False  # 109.5.4
    stop_reason: str = ""
    hlc_sent: bool = False
    events: list[tuple[str, str]] = field(default_factory=list)


def _num(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


class ChargerProtocol:
    """One CHAdeMO connector's charger side (see the module text)."""

    def __init__(self, config: ChademoConfig | None = None) -> None:
        self.cfg = config or ChademoConfig()
        self.stage = Stage.IDLE
        self.since = 0.0
        self.d1 = False
        self.d2 = False
        self.now = 0.0
        self.s = _Session()
        self.last_stop_reason = ""
        #: the highest charge current the daemon ever reported: the station's rating (its
        #: live figure is 0 A on a dead output and includes the vehicle's own request)
        self.rated_a = 0.0

    # ------------------------------------------------------------------ queries
    def status(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "d1": self.d1,
            "d2": self.d2,
            "stop_reason": self.s.stop_reason or self.last_stop_reason,
            "incompatible": self.s.incompatible,
            "charging": self.s.charging,
        }

    # ------------------------------------------------------------------ step
    def step(
        self,
        now: float,
        frames: Mapping[int, Received],
        report: Mapping[str, Any] | None,
        report_age_s: float = 0.0,
    ) -> Output:
        """One cycle: ``frames`` are the last vehicle frames by identifier, ``report`` the
        daemon's last ``hlc_*`` answer for this connector and ``report_age_s`` its age."""
        self.now = now
        rep = report if report is not None and report_age_s <= self.cfg.daemon_timeout_s else None
        st = _state(rep)
        if rep is not None:
            live = _num((rep.get("evse") or {}).get("max_charge_current_a"))
            self.rated_a = max(self.rated_a, live)
        ev = {fid: r for fid, r in frames.items() if r.at >= self.s.woke_at}
        getattr(self, f"_on_{self.stage.name.lower()}")(now, ev, rep, st)
        if self.stage is Stage.STOPPING:  # a stop of this cycle acts on this cycle's frames
            self._stopping_outputs(st)
        if self.d1:
            self._malfunctions(rep)
        end = False
        hlc = None
        if self.stage is Stage.ENDED and self.since == now:  # ended this cycle
            if self.s.hlc_sent:
                hlc, end = self._fields(EvPhase.SESSION_STOP, ev, rep), True
        else:
            hlc = self._hlc(ev, rep)
            if hlc is not None:
                self.s.hlc_sent = True
        out = Output(
            stage=self.stage,
            d1=self.d1,
            d2=self.d2,
            frames=self._frames(ev, rep) if self.d1 else (),
            hlc=hlc,
            end=end,
            events=tuple(self.s.events),
        )
        self.s.events.clear()
        return out

    # ------------------------------------------------------------------ transitions
    def _enter(self, stage: Stage, detail: str = "") -> None:
        self.s.events.append(("stage", f"{self.stage.value} -> {stage.value}" +
                              (f": {detail}" if detail else "")))  # fmt: skip
        self.stage = stage
        self.since = self.now

    def _stop(self, reason: str) -> None:
        """Stop the session (any stage with d1 on): ramp down, welding detection, release."""
        if not self.s.stop_reason:
            self.s.stop_reason = reason
            self.last_stop_reason = reason
            self.s.events.append(("stop", reason))
        self._enter(Stage.STOPPING, reason)

    # ------------------------------------------------------------------ stages
    def _on_idle(self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None) -> None:
        if st in _READY:
            self.s = _Session(woke_at=now)
            self.s.available_v = _num((rep.get("evse") or {}).get("max_voltage_v"))
            self.d1, self.d2 = True, False
            self._enter(Stage.WAKE, f"session {st.value}: d1 on")

    def _on_wake(self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None) -> None:
        if st not in _READY:
            self._stop(_station_reason(st, "before the vehicle woke"))
        elif fr.EV_CHARGE_LIMITS in ev and fr.EV_STATUS in ev:
            self.s.frames_at = now
            self._enter(Stage.PARAMETERS)
            self._on_parameters(now, ev, rep, st)  # the compatibility check at once
        elif now - self.since > self.cfg.wake_timeout_s:
            self._stop(f"no vehicle frames within {self.cfg.wake_timeout_s:g} s of d1")

    def _on_parameters(
        self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None
    ) -> None:
        if (reason := self._vehicle_stop(now, ev)) is not None:
            return self._stop(reason)
        if st not in _READY and st is not State.CABLE_CHECK:
            return self._stop(_station_reason(st, "before the cable check"))
        if (reason := self._incompatible(ev, rep)) is not None:
            self.s.incompatible = True
            self.s.events.append(("incompatible", reason))
            return self._stop(f"battery incompatible: {reason}")
        if not self.s.permitted and now - (self.s.frames_at or now) > (
            self.cfg.permission_timeout_s
        ):
            return self._stop(f"no charge permission within {self.cfg.permission_timeout_s:g} s")
        if st is State.CABLE_CHECK:
            self._enter(Stage.INSULATION)
        return None

    def _on_insulation(
        self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None
    ) -> None:
        if (reason := self._vehicle_stop(now, ev)) is not None:
            return self._stop(reason)
        if st is not State.CABLE_CHECK:
            return self._stop(_station_reason(st, "in the cable check"))
        if rep.get("cable_check_done"):
            self._enter(Stage.PRECHARGE, f"isolation {rep.get('isolation')}")
        return None

    def _on_precharge(
        self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None
    ) -> None:
        if (reason := self._vehicle_stop(now, ev)) is not None:
            return self._stop(reason)
        if st not in (State.CABLE_CHECK, State.PRECHARGE):
            return self._stop(_station_reason(st, "in the precharge"))
        volts = _num(rep.get("present_voltage_v"))
        if st is State.PRECHARGE and volts < self.cfg.dead_output_v:
            self.d2 = True
            self._enter(Stage.CONTACTORS, f"output {volts:.0f} V: d2 on")
        return None

    def _on_contactors(
        self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None
    ) -> None:
        if (reason := self._vehicle_stop(now, ev)) is not None:
            return self._stop(reason)
        if st is not State.PRECHARGE:
            return self._stop(_station_reason(st, "waiting for the vehicle's contactors"))
        volts = _num(rep.get("present_voltage_v"))
        if self.s.ev_closed_seen and volts >= self.cfg.battery_seen_v:
            self.s.battery_v = volts
            self._enter(Stage.MATCH, f"vehicle contactors closed, battery {volts:.0f} V")
        elif now - self.since > self.cfg.contactor_timeout_s:
            self._stop(
                f"the vehicle did not close its contactors within "
                f"{self.cfg.contactor_timeout_s:g} s of d2"
            )
        return None

    def _on_match(self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None) -> None:
        if (reason := self._vehicle_stop(now, ev)) is not None:
            return self._stop(reason)
        if st is State.ENERGY_TRANSFER:
            self.s.transferring = self.s.charging = True
            self._enter(Stage.TRANSFER)
        elif st is not State.PRECHARGE:
            self._stop(_station_reason(st, "in the precharge"))
        return None

    def _on_transfer(
        self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None
    ) -> None:
        if (reason := self._vehicle_stop(now, ev)) is not None:
            return self._stop(reason)
        if st is not State.ENERGY_TRANSFER:
            return self._stop(_station_reason(st, "in the energy transfer"))
        volts = _num(rep.get("present_voltage_v"))
        threshold = self._threshold_v(ev)
        if threshold > 0 and volts > threshold:
            self.s.system_malfunction = True
            return self._stop(f"output {volts:.0f} V above the threshold voltage {threshold:.0f} V")
        return None

    def _on_stopping(
        self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None
    ) -> None:
        s = self.s
        self._stopping_outputs(st)
        if s.charging and now - self.since <= self.cfg.stop_wait_s:
            return
        if s.charging:
            s.malfunction = True
            s.events.append(("stop", f"session still energized after {self.cfg.stop_wait_s:g} s"))
            s.charging = False
        if s.flag_cleared_at is None:
            s.flag_cleared_at = now
        status = ev.get(fr.EV_STATUS)
        silent = status is None or now - status.at > self.cfg.vehicle_timeout_s
        ev_open = status is not None and status.flag("StatusContactorOpen")
        if silent or ev_open or now - s.flag_cleared_at > self.cfg.welding_wait_s:
            if silent:
                what = "vehicle silent"
            elif ev_open:
                what = "vehicle contactors open"
            else:
                what = f"no welding-detection result within {self.cfg.welding_wait_s:g} s"
            self.d2 = False
            self._enter(Stage.RELEASE, f"{what}: d2 off")

    def _stopping_outputs(self, st: State | None) -> None:
        s = self.s
        if not s.transferring and self.d2:
            # no energy has flowed: d2 off at once lets the vehicle open its contactors
            self.d2 = False
            s.events.append(("pins", "d2 off (stopped before the energy transfer)"))
        # 109.5.0 stays on while the session ramps down with its contactors closed
        s.charging = s.transferring and st in (State.ENERGY_TRANSFER, State.STOPPING)

    def _on_release(
        self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None
    ) -> None:
        volts = _num(rep.get("present_voltage_v")) if rep is not None else 0.0
        waited = now - self.since
        if waited < self.cfg.d1_after_d2_s:
            return
        if volts <= self.cfg.dead_output_v or waited > self.cfg.release_timeout_s:
            self.d1 = False
            self._enter(Stage.ENDED, f"output {volts:.0f} V: d1 off")

    def _on_ended(self, now: float, ev: Mapping[int, Received], rep: Any, st: State | None) -> None:
        if st is not None and st not in _READY:
            self.last_stop_reason = self.s.stop_reason or self.last_stop_reason
            self._enter(Stage.IDLE, f"session {st.value}")

    # ------------------------------------------------------------------ checks
    def _vehicle_stop(self, now: float, ev: Mapping[int, Received]) -> str | None:
        """Why the vehicle ends the session (None: it does not); tracks its flags."""
        s = ev.get(fr.EV_STATUS)
        if s is None or now - s.at > self.cfg.vehicle_timeout_s:
            return f"vehicle frames (0x102) missing for more than {self.cfg.vehicle_timeout_s:g} s"
        for name, text in fr.EV_FAULTS.items():
            if s.flag(name):
                return f"vehicle fault: {text}"
        if s.flag("StatusSystemFault"):
            return "vehicle charging-system fault"
        if s.flag("StatusShiftNotInPark"):
            return "vehicle shift lever not in park"
        if s.flag("StatusNormalStopRequest"):
            return "vehicle stop request"
        if s.flag("StatusChargingEnabled"):
            self.s.permitted = True
        elif self.s.permitted:
            return "vehicle withdrew its charge permission"
        if s.get("TargetBatteryVoltage") > 0:
            self.s.target_seen = True
        elif self.s.target_seen:
            return "vehicle target voltage 0"
        if not s.flag("StatusContactorOpen") and self.d2:
            self.s.ev_closed_seen = True  # closed only counts after d2
        return None

    def _incompatible(self, ev: Mapping[int, Received], rep: Any) -> str | None:
        """The compatibility check (research/frontends.md 3.3 step 3)."""
        evse = rep.get("evse") or {}
        available = self.s.available_v or _num(evse.get("max_voltage_v"))
        minimum = _num(evse.get("min_voltage_v"))
        target = ev[fr.EV_STATUS].get("TargetBatteryVoltage")
        if available > 0 and target > available:
            return f"target voltage {target:.0f} V above the available {available:.0f} V"
        lowest = ev[fr.EV_CHARGE_LIMITS].get("MinBatteryVoltage")
        if minimum > 0 and 0 < lowest < minimum:
            return f"minimum battery voltage {lowest:.0f} V below the charger's {minimum:.0f} V"
        return None

    def _malfunctions(self, rep: Any) -> None:
        """109.5.1 / 109.5.4 latch for the session: the daemon gone, a session fault."""
        if rep is None:
            self.s.malfunction = True  # the daemon does not answer
            return
        fault = _fault(rep.get("fault"))
        if fault in _SYSTEM_FAULTS:
            self.s.system_malfunction = True
        elif fault is not None:
            self.s.malfunction = True

    def _offered_a(self, amps: float) -> float:
        """108.3. Before the transfer: the station's rating (:attr:`rated_a`). During it: at
        most ``undersupply_a`` above what flows, so the vehicle's request never runs far
        ahead of a station that delivers less (a dynamic setpoint, a discharge, derating);
        the vehicle follows the offer (it uses min(108.3, its own maximum)). The daemon's
        live limit cannot serve: its report includes the vehicle's own request."""
        if not self.s.transferring:
            return self.rated_a
        return min(self.rated_a or math.inf, max(0.0, amps) + self.cfg.undersupply_a)

    def _threshold_v(self, ev: Mapping[int, Received]) -> float:
        """108.4-5: min(vehicle maximum battery voltage, available output voltage)."""
        limits = ev.get(fr.EV_CHARGE_LIMITS)
        vmax = limits.get("MaxBatteryVoltage") if limits is not None else 0.0
        available = self.s.available_v
        if vmax > 0 and available > 0:
            return min(vmax, available)
        return vmax or available

    # ------------------------------------------------------------------ hlc
    def _hlc(self, ev: Mapping[int, Received], rep: Any) -> dict[str, Any] | None:
        st, s = self.stage, self.s
        status = ev.get(fr.EV_STATUS)
        if st in (Stage.IDLE, Stage.WAKE, Stage.ENDED) or status is None:
            return None
        if st is Stage.PARAMETERS:
            phase = EvPhase.CABLE_CHECK if s.permitted else EvPhase.PARAMETER_DISCOVERY
            return self._fields(phase, ev, rep)
        if st is Stage.INSULATION:
            return self._fields(EvPhase.CABLE_CHECK, ev, rep)
        if st in (Stage.PRECHARGE, Stage.CONTACTORS):
            # no target yet: the output is brought below 10 V for the vehicle's contactors
            return self._fields(EvPhase.PRECHARGE, ev, rep, target_v=0.0, present_v=0.0)
        if st is Stage.MATCH:
            done = bool(rep is not None and rep.get("precharge_done"))
            phase = EvPhase.POWER_DELIVERY_START if done else EvPhase.PRECHARGE
            return self._fields(phase, ev, rep, target_v=s.battery_v, present_v=s.battery_v)
        if st is Stage.TRANSFER:
            return self._fields(EvPhase.CHARGE_LOOP, ev, rep)
        if st is Stage.STOPPING and s.flag_cleared_at is None:
            return self._fields(EvPhase.POWER_DELIVERY_STOP, ev, rep)
        return self._fields(EvPhase.WELDING_DETECTION, ev, rep)

    def _ev_closed(self, ev: Mapping[int, Received]) -> bool:
        """The vehicle's contactors as the session should assume them: a vehicle that went
        silent with them closed still has them closed."""
        status = ev.get(fr.EV_STATUS)
        if status is None or self.now - status.at > self.cfg.vehicle_timeout_s:
            return self.s.ev_closed_seen and self.s.transferring
        return not status.flag("StatusContactorOpen")

    def _fields(
        self,
        phase: EvPhase,
        ev: Mapping[int, Received],
        rep: Any,
        target_v: float | None = None,
        present_v: float = 0.0,
    ) -> dict[str, Any]:
        status = ev.get(fr.EV_STATUS)
        limits = ev.get(fr.EV_CHARGE_LIMITS)
        discharge = ev.get(fr.EV_DISCHARGE_LIMITS)
        bpt = self.cfg.v2h and status is not None and status.flag("StatusDischargeCompatible")
        request = _request_a(ev)
        min_v = limits.get("MinBatteryVoltage") if limits else 0.0
        if bpt and discharge is not None:
            min_v = max(min_v, discharge.get("MinDischargeVoltage"))
        constant = limits.get("ChargedRateConstant") if limits else 0.0
        rate = status.get("ChargedRate") if status else 0.0
        soc = rate * 100.0 / constant if constant > 0 else rate
        target = status.get("TargetBatteryVoltage") if status else 0.0
        return {
            "phase": phase.value,
            "bpt": bpt,
            "max_voltage_v": limits.get("MaxBatteryVoltage") if limits else 0.0,
            "min_voltage_v": min_v,
            "max_charge_current_a": request,
            "max_discharge_current_a": (
                discharge.get("MaxDischargeCurrent") if bpt and discharge is not None else 0.0
            ),
            "target_voltage_v": target_v if target_v is not None else target,
            "target_current_a": request,
            "present_voltage_v": present_v,
            "soc": min(100.0, max(0.0, soc)),
            "contactors_closed": self._ev_closed(ev),
        }

    # ------------------------------------------------------------------ frames
    def _frames(
        self, ev: Mapping[int, Received], rep: Any
    ) -> tuple[tuple[int, Mapping[str, float]], ...]:
        s, cfg = self.s, self.cfg
        evse = (rep.get("evse") or {}) if rep is not None else {}
        st = _state(rep)
        volts = _num(rep.get("present_voltage_v")) if rep is not None else 0.0
        amps = _num(rep.get("present_current_a")) if rep is not None else 0.0
        available = s.available_v or _num(evse.get("max_voltage_v"))
        transfer = self.stage is Stage.TRANSFER
        limits = ev.get(fr.EV_CHARGE_LIMITS)
        times = ev.get(fr.EV_CHARGE_TIME)
        minutes = 255.0
        if times is not None:
            minutes = (
                times.get("MaxChargeTime1min") / 60.0
                if times.get("MaxChargeTime10s") >= 2550.0
                else times.get("MaxChargeTime10s") / 60.0
            )
        out: list[tuple[int, Mapping[str, float]]] = [
            (fr.EVSE_CAPABILITY, {
                "WeldingDetectionSupport": 1,
                "AvailableOutputVoltage": available,
                "AvailableOutputCurrent": self._offered_a(amps),
                "ThresholdVoltage": self._threshold_v(ev) if limits else available,
            }),
            (fr.EVSE_STATUS, {
                "ProtocolNumber": cfg.protocol_number,
                "PresentOutputVoltage": volts,
                "PresentOutputCurrent": max(0.0, amps),
                "DischargeCompatible": int(cfg.v2h),
                "StatusCharging": int(s.charging),
                "StatusMalfunction": int(s.malfunction),
                "StatusConnectorLocked": int(st in _LOCKED or volts > cfg.dead_output_v),
                "StatusBatteryIncompatible": int(s.incompatible),
                "StatusSystemMalfunction": int(s.system_malfunction),
                "StatusStopControl": int(not transfer),
                "RemainingChargeTime10s": 2550.0,  # 0xFF: use the minutes
                "RemainingChargeTime1min": min(255.0, minutes) * 60.0,
            }),
        ]  # fmt: skip
        if cfg.v2h:
            out.append((fr.EVSE_DISCHARGE_CAPABILITY, {
                "PresentDischargeCurrent": max(0.0, -amps),
                "AvailableInputVoltage": available,
                "AvailableInputCurrent": _num(evse.get("max_discharge_current_a")),
                "LowerThresholdVoltage": cfg.min_discharge_voltage_v,
            }))  # fmt: skip
            estimate = ev.get(fr.EV_DISCHARGE_ESTIMATE)
            if estimate is not None:  # a V2H 1.1+ vehicle: answer in kind
                out.append((fr.EVSE_DISCHARGE_ESTIMATE, {
                    "SequenceNumber": estimate.get("V2hSequenceNumber"),
                    "RemainingDischargeTime": 0,
                }))  # fmt: skip
        return tuple(out)


def _request_a(ev: Mapping[int, Received]) -> float:
    """102.3, or 110.1-2 in CHAdeMO 2.0 high-current mode (102.3 = 0xFF)."""
    status = ev.get(fr.EV_STATUS)
    if status is None:
        return 0.0
    request = status.get("ChargeCurrentRequest")
    ext = ev.get(fr.EV_EXTENDED)
    if request >= 255 and ext is not None and ext.flag("HighCurrentControl"):
        return ext.get("ExtChargeCurrentRequest")
    return request


def _state(rep: Mapping[str, Any] | None) -> State | None:
    if rep is None:
        return None
    try:
        return State(rep.get("state"))
    except ValueError:
        return None


def _fault(value: Any) -> FaultReason | None:
    try:
        return FaultReason(value)
    except ValueError:
        return None


def _station_reason(st: State | None, where: str) -> str:
    if st is None:
        return f"daemon not answering ({where})"
    return f"session {st.value} ({where})"
