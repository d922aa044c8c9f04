"""The control loop: the one place that owns the station's state.

Each tick (default 100 Hz) runs, in this order:

1. ``fieldbus.poll(now)``: heartbeats, EMCY, TPDOs, node states, bus health;
2. the tick's inputs: chipset and module status by profile name, EV data from ``hlc``;
3. the limits engine at the present voltages and temperatures (every current limit);
4. ``station.step(now, inputs)``: the charge-session state machines;
5. the power path: the requested current of every connector clamped to the limits,
   ramped symmetrically (bypassed on a safety stop), shared over its modules; the
   module voltage by the sign of the *ramped* current;
6. every command staged on the fieldbus and ``flush``: RPDOs handed to the bus;
7. energy metering, crash-safe records, structured logs and telemetry events.

API commands are served between ticks in the same thread (see :mod:`bptd.daemon.app`);
a command that changes what the modules should do runs an extra tick at once, so its
RPDOs leave without waiting for the next period.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from bptd.codes import (
    AC_HEARTBEAT,
    AC_RPDO_TIMEOUT,
    CP_C,
    CP_D,
    DC_DERATING,
    DC_HEARTBEAT,
    DC_OUTSIDE_SOA,
    DC_OVERTEMP,
    DC_RPDO_TIMEOUT,
    F_HEARTBEAT,
    F_RPDO_TIMEOUT,
    FAULT_RESET_BIT,
    MODE_DC_VOLTAGE,
    MODULE_FAULT,
    MODULE_OFF,
    MODULE_RUNNING,
    OUTPUTS,
)
from bptd.config import Config
from bptd.daemon.hlc import HlcStore
from bptd.daemon.state import (
    INF,
    MODULE_MODES,
    ConnectorRuntime,
    ModuleRuntime,
)
from bptd.emcy import OVER_TEMPERATURE, OVERTEMP_DERATING, OVERTEMP_TRIP
from bptd.fieldbus import (
    BusFault,
    BusRecovered,
    BusWarning,
    EmcyReceived,
    Fieldbus,
    FieldbusEvent,
    NodeState,
    NodeStateChanged,
)
from bptd.limits import HardLimits, LimitsEngine, RampLimiter, ratings_from_config
from bptd.records import SessionJournal
from bptd.session import (
    CommandEvent,
    ConnectorInputs,
    ConnectorOutputs,
    FaultRaised,
    LimitsInput,
    ModuleInputs,
    Notice,
    SessionConfig,
    State,
    StateChanged,
    Station,
)
from bptd.session.states import ENERGIZED

log = structlog.get_logger("bptd.loop")

Publish = Callable[[str, dict[str, Any]], None]

#: states in which a session record is open (authorization given, not yet finished)
RECORDED = frozenset(
    {
        State.AUTHORIZED,
        State.ALLOCATED,
        State.CABLE_CHECK,
        State.PRECHARGE,
        State.ENERGY_TRANSFER,
        State.STOPPING,
        State.WELDING_DETECTION,
    }
)
#: latches a device sets when the supervisor went silent (heartbeat / RPDO deadline): after
#: a daemon restart they are the daemon's own absence, cleared with a reset pulse while
#: nothing is energized (other fault bits are never cleared without a ``reset`` command)
COMM_LATCH_CHIPSET = F_HEARTBEAT | F_RPDO_TIMEOUT
COMM_LATCH_DC = DC_HEARTBEAT | DC_RPDO_TIMEOUT | DC_DERATING | DC_OUTSIDE_SOA
COMM_LATCH_AC = AC_HEARTBEAT | AC_RPDO_TIMEOUT
RESET_PULSE_S = 0.1
RESET_RETRY_S = 1.0
#: connector states in which nothing is energized or allocated
AT_REST = frozenset({State.IDLE, State.CONNECTED, State.FINISHED})
#: inhibit time of the RPDO flushes from a command until its RPDOs have left (the bus
#: budget still holds: commands are rare, and the periodic flush keeps the configured
#: inhibit). An RPDO sent just before the command would otherwise wait out the whole
#: configured inhibit (50 ms by default) instead of leaving in the next tick.
URGENT_INHIBIT_S = 0.002


@dataclass(frozen=True)
class PendingCommand:
    received_perf: float
    received_mono: float
    command: str
    args: dict[str, Any]


class ControlLoop:
    """Fieldbus, sessions, limits, records and telemetry of one station, ticked by ``tick``."""

    def __init__(
        self,
        config: Config,
        fieldbus: Fieldbus,
        *,
        session_config: SessionConfig | None = None,
        journal: SessionJournal | None = None,
        publish: Publish | None = None,
        hlc_timeout_s: float = 2.0,
    ) -> None:
        self.cfg = config
        self.fb = fieldbus
        self.station = Station.from_config(config, session_config)
        self.journal = journal
        self.publish: Publish = publish or (lambda topic, payload: None)
        self.connectors = {
            c.name: ConnectorRuntime(c.name, i) for i, c in enumerate(config.connectors)
        }
        self.modules = {m.n: ModuleRuntime(m.n, i) for i, m in enumerate(config.modules)}
        #: fieldbus keys of every module's nodes, (dcdc, afe), built once
        self._node_keys = {n: (f"dcdc.{n}", f"afe.{n}") for n in self.modules}
        rc = config.module_ratings
        for mr in self.modules.values():
            mr.settings.ramp_w_per_s = rc.max_ramp_w_per_s
        self.ratings = ratings_from_config(rc)
        nc, nm = len(self.connectors), len(self.modules)
        self.engine = LimitsEngine(nm, nc, (self.ratings,))
        for c in config.connectors:
            i = self.connectors[c.name].index
            self.engine.set_hard_limits(
                i,
                HardLimits(
                    charge_current_a=c.max_current_a,
                    discharge_current_a=-c.max_current_a,
                    charge_power_w=c.max_power_w,
                    discharge_power_w=-c.max_power_w,
                    voltage_max_v=c.max_voltage_v,
                ),
            )
        self.ramp = RampLimiter(nc, 0.0)
        self.hlc = HlcStore(list(self.connectors), hlc_timeout_s)
        self.outputs: dict[str, ConnectorOutputs] = {}
        # per-tick arrays (allocated once)
        self._conn_v = np.zeros(nc)
        self._target = np.zeros(nc)
        self._stop = np.zeros(nc)
        self._temp = np.full(nm, 25.0)
        self._online = np.zeros(nm)
        self._grid_v = np.full(nm, np.nan)
        self._q = np.zeros(nm)
        self._last: float | None = None
        self._last_telemetry = -INF
        self.urgent = False
        self.ticks = 0
        self.tick_errors = 0
        self.started = time.monotonic()
        #: seconds from an urgent command's arrival (``command_received``) to the return of
        #: the first flush, from the tick it ran on, that handed RPDOs to the bus (a flush
        #: that sent nothing, e.g. every changed RPDO still inhibited, does not count)
        self.command_latency_s: collections.deque[float] = collections.deque(maxlen=10000)
        self._pending_commands: collections.deque[PendingCommand] = collections.deque(maxlen=1000)
        self._last_inputs: dict[str, ConnectorInputs] | None = None
        self.bus_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self._now = 0.0
        #: node key -> (pulse until, next pulse allowed at) of a comm-latch reset
        self._latch_pulse: dict[str, tuple[float, float]] = {}

    # ------------------------------------------------------------------ tick
    def tick(self, now: float, light: bool = False) -> None:
        """One control cycle at monotonic time ``now`` (see the module docstring).

        ``light``: the extra tick right after a command. It reuses the inputs and limits of
        the last full tick (at most one period old) and skips polling and telemetry, so
        the command's RPDOs leave sooner; it is a full tick when the allocation changed."""
        dt = 0.0 if self._last is None else min(max(now - self._last, 0.0), 0.1)
        self._last = self._now = now
        changed = False
        if not light:
            for ev in self.fb.poll(now):
                self._on_fieldbus(ev)
        changed = self._sync_allocations()
        inputs = self._last_inputs
        if not light or changed or inputs is None:
            light = False
            inputs = self._last_inputs = self._inputs(now)
        outs = self.station.step(now, inputs)
        self.outputs = outs
        self._drive(outs, dt)
        urgent, self.urgent = self.urgent or bool(self._pending_commands), False
        sent = self.fb.flush(now, URGENT_INHIBIT_S if urgent else None)
        if sent and self._pending_commands:
            self._commands_sent()
        for name, out in outs.items():
            self._account(name, out, now, dt)
        self.ticks += 1
        period = 1.0 / self.cfg.station.telemetry_hz
        if not light and now - self._last_telemetry >= period:
            self._last_telemetry = now
            self.publish_measurements(now)

    @property
    def retry_at(self) -> float | None:
        """When to flush again for a command whose RPDOs an inhibit time still holds
        (the short urgent inhibit after an RPDO sent just before), or None."""
        if self._pending_commands and self.fb.rpdos_held:
            return self._now + URGENT_INHIBIT_S
        return None

    def command_received(
        self, at: float, command: str = "", args: Mapping[str, Any] | None = None
    ) -> None:
        """A command changed what the modules should do: tick at once, flush now."""
        self.urgent = True
        self._pending_commands.append(
            PendingCommand(at, time.monotonic(), command, dict(args or {}))
        )

    def _commands_sent(self) -> None:
        """The sync marker: when each command was received and its RPDOs left."""
        done, mono = time.perf_counter(), time.monotonic()
        for c in self._pending_commands:
            self.command_latency_s.append(done - c.received_perf)
            if c.command:
                self.publish("event", {
                    "kind": "command_applied", "command": c.command,
                    "connector": c.args.get("connector"), "args": c.args,
                    "received_mono": c.received_mono, "sent_mono": mono,
                })  # fmt: skip
        self._pending_commands.clear()

    # ------------------------------------------------------------------ inputs
    def _module_inputs(self) -> dict[int, ModuleInputs]:
        fb = self.fb
        out: dict[int, ModuleInputs] = {}
        keys = self._node_keys
        for n, mr in self.modules.items():
            dk, ak = keys[n]
            online = (
                fb.node_state(dk) is NodeState.OPERATIONAL
                and fb.node_state(ak) is NodeState.OPERATIONAL
            )
            dcdc, afe = fb.values(dk), fb.values(ak)
            fault = int(dcdc.get("fault_word", 0))
            if (
                online
                and MODULE_FAULT in (dcdc.get("state"), afe.get("state"))
                and n not in self.station.ownership.owner
                and not fault & ~COMM_LATCH_DC
                and not int(afe.get("fault_word", 0)) & ~COMM_LATCH_AC
            ):
                self._pulse(
                    f"module.{n}", f"dc 0x{fault:04X}, ac 0x{int(afe.get('fault_word', 0)):04X}"
                )
            derating = mr.derating or bool(fault & DC_DERATING)
            tripped = mr.tripped or bool(fault & DC_OVERTEMP)
            i = mr.index
            self._online[i] = 1.0 if online and not tripped else 0.0
            self._temp[i] = max(dcdc.get("temperature_c", 25.0), afe.get("temperature_c", 25.0))
            vl = [afe[k] for k in ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v") if k in afe]
            self._grid_v[i] = sum(vl) / len(vl) if vl and min(vl) > 50.0 else np.nan
            out[n] = ModuleInputs(online, dcdc, afe, derating, tripped)
        return out

    def _inputs(self, now: float) -> dict[str, ConnectorInputs]:
        fb = self.fb
        modules = self._module_inputs()
        owner = self.station.ownership.owner
        chipsets: dict[str, Mapping[str, float] | None] = {}
        for name, cr in self.connectors.items():
            key = f"chipset.{name}"
            chip = fb.values(key) if fb.node_state(key) is NodeState.OPERATIONAL else None
            if chip is not None:
                chip = self._comm_latch(name, chip)
            chipsets[name] = chip
            mods = [n for n, o in owner.items() if o == name]
            volts = [modules[n].dcdc.get("dc_voltage_v", 0.0) for n in mods if modules[n].online]
            amps = [modules[n].dcdc.get("dc_current_a", 0.0) for n in mods if modules[n].online]
            series = cr.allocation[1] == "series" and len(mods) > 1
            if volts:
                cr.voltage_v = sum(volts) if series else sum(volts) / len(volts)
                cr.current_a = (sum(amps) / len(amps)) if series else sum(amps)
            else:
                cr.voltage_v = chip.get("hv_voltage_v", 0.0) if chip is not None else 0.0
                cr.current_a = 0.0
            self._conn_v[cr.index] = cr.voltage_v
            ev = self.hlc.entries[name].data
            if self.hlc.fresh(name, now) and ev.present:
                self.engine.set_ev_limits(
                    cr.index,
                    charge_current_a=ev.max_charge_current_a,  # 0 A is a limit: none
                    discharge_current_a=-(ev.max_discharge_current_a if ev.bpt else 0.0),
                    charge_power_w=ev.max_charge_power_w,
                    discharge_power_w=-(ev.max_discharge_power_w if ev.bpt else 0.0),
                    charge_voltage_max_v=ev.max_voltage_v or INF,
                    discharge_voltage_min_v=ev.min_voltage_v if ev.min_voltage_v else -INF,
                )
            else:
                self.engine.set_ev_limits(cr.index)
        for mr in self.modules.values():
            self._q[mr.index] = abs(mr.settings.reactive_power_var)
        lim = self.engine.compute(
            voltage_v=self._conn_v,
            temp_c=self._temp,
            online=self._online,
            grid_voltage_v=self._grid_v,
            reactive_power_var=self._q,
        )
        inputs: dict[str, ConnectorInputs] = {}
        for name, cr in self.connectors.items():
            i = cr.index
            chg, dis = float(lim.charge_current_a[i]), float(lim.discharge_current_a[i])
            bc, bd = self.engine.binding(i)
            ul = cr.limits
            if chg > 0 and cr.voltage_v >= ul.max_charge_voltage_v:
                chg, bc = 0.0, "user_voltage"
            if dis < 0 and cr.voltage_v > ul.max_discharge_voltage_v:
                dis, bd = 0.0, "user_voltage"
            cr.charge_limit_a, cr.discharge_limit_a, cr.binding = chg, dis, (bc, bd)
            chip = chipsets[name]
            cp = int(chip.get("cp_state", 0)) if chip is not None else 0
            inputs[name] = ConnectorInputs(
                chipset=chip,
                modules=modules,
                ev=self.hlc.ev(name, now, ready=cp in (CP_C, CP_D)),
                limits=LimitsInput(chg, dis, bc, bd),
                measured_current_a=cr.current_a,
                measured_voltage_v=cr.voltage_v,
            )
        return inputs

    def _pulse(self, key: str, detail: str) -> None:
        _, retry = self._latch_pulse.get(key, (0.0, 0.0))
        if self._now >= retry:
            self._latch_pulse[key] = (self._now + RESET_PULSE_S, self._now + RESET_RETRY_S)
            log.info("comm_latch_reset", node=key, detail=detail)

    def pulsing(self, key: str) -> bool:
        until, _ = self._latch_pulse.get(key, (0.0, 0.0))
        return self._now < until

    def _comm_latch(self, name: str, chip: Mapping[str, float]) -> Mapping[str, float]:
        """A chipset at rest whose only faults are comm latches: reset them, unseen."""
        word = int(chip.get("fault_word", 0))
        if (
            not word
            or word & ~COMM_LATCH_CHIPSET
            or self.station[name].state not in AT_REST
            or int(chip.get("contactor_feedback", 0)) & OUTPUTS
        ):
            return chip
        self._pulse(f"chipset.{name}", f"fault word 0x{word:04X}")
        return {**chip, "fault_word": 0.0}

    def _sync_allocations(self) -> bool:
        """Mirror the sessions' module ownership into the limits engine and the ramp."""
        changed = False
        for name, cr in self.connectors.items():
            alloc = self.station.ownership.allocations.get(name)
            now_alloc = (alloc.modules, alloc.topology) if alloc else ((), "parallel")
            if now_alloc == cr.allocation:
                continue
            cr.allocation = now_alloc
            idx = [self.modules[n].index for n in now_alloc[0]]
            topo = "series" if now_alloc[1] == "series" else "parallel"
            self.engine.set_allocation(cr.index, idx, topo)
            self.ramp.value[cr.index] = 0.0
            changed = True
            log.info("allocation_applied", connector=name, modules=list(now_alloc[0]),
                     topology=topo)  # fmt: skip
        if changed:
            self.update_ramp_rates()
        return changed

    def update_ramp_rates(self) -> None:
        """Connector ramp rate: the sum of its modules' rates (``module {ramp_w_per_s}``)."""
        rates = np.zeros(len(self.connectors))
        for cr in self.connectors.values():
            mods = cr.allocation[0]
            rates[cr.index] = sum(self.modules[n].settings.ramp_w_per_s for n in mods)
        self.ramp.set_rate(rates)

    # ------------------------------------------------------------------ power path
    def _drive(self, outs: Mapping[str, ConnectorOutputs], dt: float) -> None:
        for name, cr in self.connectors.items():
            p = outs[name].power
            i = cr.index
            self._target[i] = p.requested_current_a if p.phase_current_limit_a is None else 0.0
            self._stop[i] = 1.0 if p.safety_stop else 0.0
        upper = np.array([cr.charge_limit_a for cr in self.connectors.values()])
        lower = np.array([cr.discharge_limit_a for cr in self.connectors.values()])
        for name, cr in self.connectors.items():
            if not outs[name].power.discharge_allowed:
                lower[cr.index] = 0.0
        ramped = self.ramp.step(
            self._target, dt, voltage_v=self._conn_v, safety_stop=self._stop,
            lower=lower, upper=upper,
        )  # fmt: skip
        for name, cr in self.connectors.items():
            if outs[name].power.phase_current_limit_a is not None:
                ramped[cr.index] = 0.0
        per_module = self.engine.share(ramped)
        for name, cr in self.connectors.items():
            cr.applied_current_a = float(self.engine.shared_connector_a[cr.index])
            self._set_chipset(name, outs[name])
        owner = self.station.ownership.owner
        for n, mr in self.modules.items():
            conn = owner.get(n)
            out = outs.get(conn) if conn is not None else None
            mc = out.modules.get(n) if out is not None else None
            if out is None or mc is None:
                self._module_off(mr)
                continue
            assert conn is not None
            self._module_on(mr, out, mc, self.connectors[conn], float(per_module[mr.index]))

    def _set_chipset(self, name: str, out: ConnectorOutputs) -> None:
        cmd = out.chipset.as_dict()
        if self.pulsing(f"chipset.{name}"):
            cmd["fault_reset"] = 1
        try:
            self.fb.set(f"chipset.{name}", **cmd)
        except ValueError as exc:  # a bug: never send half a command
            log.error("chipset_command_rejected", connector=name, error=str(exc))

    def _module_off(self, mr: ModuleRuntime) -> None:
        off = MODULE_OFF | (FAULT_RESET_BIT if self.pulsing(f"module.{mr.n}") else 0)
        cmd = {
            "state_request": off,
            "power_mode": MODE_DC_VOLTAGE,
            "voltage_setpoint_v": 0.0,
            "charge_current_limit_a": 0.0,
            "discharge_current_limit_a": 0.0,
        }
        self._set_module(mr, cmd, {"state_request": off, "reactive_power_setpoint_var": 0})

    def _module_on(
        self,
        mr: ModuleRuntime,
        out: ConnectorOutputs,
        mc: Any,
        cr: ConnectorRuntime,
        share_a: float,
    ) -> None:
        power = out.power
        series = len(cr.allocation[0]) if cr.allocation[1] == "series" else 1
        running = (mc.state_request & ~FAULT_RESET_BIT) == MODULE_RUNNING
        if not running:
            chg = dis = volts = 0.0
        elif power.phase_current_limit_a is not None:
            # cable check / precharge: regulate the voltage with a small current either way;
            # pulling the output down is only possible inside the discharge window
            chg = dis = min(power.phase_current_limit_a, self.ratings.charge_current_max_a)
            if cr.voltage_v / series < self.cfg.module_ratings.min_discharge_voltage_v:
                dis = 0.0
            volts = mc.voltage_setpoint_v
        elif share_a >= 0.0:
            chg, dis = share_a, 0.0
            volts = min(power.charge_voltage_v, cr.limits.max_charge_voltage_v) / series
        else:
            chg, dis = 0.0, -share_a
            volts = power.discharge_voltage_v / series
        if not (math.isfinite(volts) and math.isfinite(chg) and math.isfinite(dis)):
            log.error("module_command_not_finite", module=mr.n, volts=volts, chg=chg, dis=dis)
            self._module_off(mr)
            return
        st = mr.settings
        mode = MODULE_MODES.get(st.mode, MODE_DC_VOLTAGE)
        q = st.reactive_power_var
        if power.reactive_power_var is not None and cr.allocation[0]:
            q = power.reactive_power_var / len(cr.allocation[0])
        cmd = {
            "state_request": mc.state_request,
            "power_mode": MODE_DC_VOLTAGE if mode != MODE_DC_VOLTAGE and not running else mode,
            "voltage_setpoint_v": max(volts, 0.0),
            "charge_current_limit_a": max(chg, 0.0),
            "discharge_current_limit_a": max(dis, 0.0),
        }
        afe = {
            "state_request": mc.afe_state_request,
            "operating_mode": mode if running else mc.afe_operating_mode,
            "reactive_power_setpoint_var": q if running else 0.0,
            "active_ramp_w_per_s": st.ramp_w_per_s,
            "v2l_voltage_v": st.v2l_voltage_v,
            "v2l_frequency_hz": st.v2l_frequency_hz,
        }
        if st.power_factor is not None:
            afe["power_factor_setpoint_permille"] = st.power_factor * 1000.0
        self._set_module(mr, cmd, afe)

    def _set_module(self, mr: ModuleRuntime, dcdc: dict[str, float], afe: dict[str, float]) -> None:
        try:
            dk, ak = self._node_keys[mr.n]
            self.fb.set(dk, **dcdc)
            self.fb.set(ak, **afe)
            mr.command = dcdc
        except ValueError as exc:
            log.error("module_command_rejected", module=mr.n, error=str(exc))
            if int(dcdc.get("state_request", 0)) & ~FAULT_RESET_BIT != MODULE_OFF:
                self._module_off(mr)

    # ------------------------------------------------------------------ events
    def _on_fieldbus(self, ev: FieldbusEvent) -> None:
        if isinstance(ev, EmcyReceived):
            self._emcy(ev)
            payload: dict[str, Any] = {
                "kind": "emcy", "node": ev.key, "code": f"0x{ev.code:04X}", "text": ev.text,
                "detail": ev.detail,
            }  # fmt: skip
        elif isinstance(ev, NodeStateChanged):
            payload = {"kind": "node", "node": ev.key, "old": ev.old.value,
                       "new": ev.new.value, "text": ev.reason}  # fmt: skip
            if ev.new is not NodeState.OPERATIONAL and ev.key.startswith("dcdc."):
                self.modules[int(ev.key.split(".")[1])].tripped = False
        elif isinstance(ev, BusFault):
            payload = {"kind": "bus_fault", "text": ev.reason}
        elif isinstance(ev, BusWarning):
            payload = {"kind": "bus_warning", "text": ev.reason}
        elif isinstance(ev, BusRecovered):
            payload = {"kind": "bus_recovered", "text": f"bus back after {ev.downtime_s:.1f} s"}
        else:
            return
        self.bus_events.append(payload)
        self.publish("event", payload)

    def _emcy(self, ev: EmcyReceived) -> None:
        kind, _, n = ev.key.partition(".")
        if kind not in ("dcdc", "afe"):
            return
        mr = self.modules.get(int(n))
        if mr is None:
            return
        if ev.is_reset:
            mr.derating = mr.tripped = False
        elif ev.code == OVER_TEMPERATURE and ev.data:
            mr.derating = ev.data[0] == OVERTEMP_DERATING
            mr.tripped = ev.data[0] == OVERTEMP_TRIP

    def _account(self, name: str, out: ConnectorOutputs, now: float, dt: float) -> None:
        cr = self.connectors[name]
        if out.state in ENERGIZED:
            cr.meter.add(cr.power_w, dt)
        for ev in out.events:
            self._session_event(name, cr, ev, now)
        j = self.journal
        if j is not None and cr.record_id is not None and out.state is State.ENERGY_TRANSFER:
            m = cr.meter
            j.progress(cr.record_id, now, m.import_wh, m.export_wh, m.peak_charge_w,
                       m.peak_discharge_w)  # fmt: skip

    def _session_event(self, name: str, cr: ConnectorRuntime, ev: Any, now: float) -> None:
        if isinstance(ev, StateChanged):
            log.info("state_changed", connector=name, **{"from": ev.from_state.value},
                     to=ev.to_state.value, reason=ev.reason, source=ev.source)  # fmt: skip
            payload: dict[str, Any] = {
                "kind": "state_changed", "connector": name, "from": ev.from_state.value,
                "to": ev.to_state.value, "text": ev.reason,
            }  # fmt: skip
            self._record_transition(name, cr, ev, now)
        elif isinstance(ev, FaultRaised):
            log.warning("fault", connector=name, reason=ev.reason.value, text=ev.text,
                        detail=ev.detail)  # fmt: skip
            payload = {"kind": "fault", "connector": name, "reason": ev.reason.value,
                       "text": ev.text, "detail": ev.detail}  # fmt: skip
            if self.journal is not None and cr.record_id is not None:
                self.journal.fault(cr.record_id, ev.reason.value)
        elif isinstance(ev, CommandEvent):
            payload = {"kind": "command", "connector": name, "command": ev.command,
                       "accepted": ev.accepted, "text": ev.detail, "code": ev.code}  # fmt: skip
        elif isinstance(ev, Notice):
            log.info("notice", connector=name, notice=ev.kind, detail=ev.detail)
            payload = {"kind": "notice", "connector": name, "notice": ev.kind, "text": ev.detail}
        else:
            return
        self.publish("event", payload)

    def _record_transition(
        self, name: str, cr: ConnectorRuntime, ev: StateChanged, now: float
    ) -> None:
        j = self.journal
        m = cr.meter
        if ev.to_state in RECORDED and cr.record_id is None:
            cr.meter, cr.stop_reason = type(m)(), ""
            if j is not None:
                cr.record_id = j.start(name, now, reason=ev.reason)
            else:
                cr.record_id = f"unrecorded-{self.ticks}"
            return
        if cr.record_id is None:
            return
        if ev.to_state is State.STOPPING and not cr.stop_reason:
            cr.stop_reason = ev.reason
        if ev.to_state in RECORDED:
            if j is not None:
                j.progress(cr.record_id, now, m.import_wh, m.export_wh, m.peak_charge_w,
                           m.peak_discharge_w, force=True)  # fmt: skip
            return
        if ev.to_state is State.FAULT:
            cr.stop_reason = cr.stop_reason or f"fault: {ev.reason}"
            if j is not None:
                j.progress(cr.record_id, now, m.import_wh, m.export_wh, m.peak_charge_w,
                           m.peak_discharge_w, force=True)  # fmt: skip
            return  # the record closes when the fault is reset or the vehicle leaves
        reason = cr.stop_reason or ev.reason
        if j is not None:
            j.stop(cr.record_id, reason, m.import_wh, m.export_wh, m.peak_charge_w,
                   m.peak_discharge_w)  # fmt: skip
        cr.record_id, cr.stop_reason = None, ""

    def close_records(self, reason: str) -> None:
        """Close every open record (orderly shutdown)."""
        for cr in self.connectors.values():
            if cr.record_id is not None and self.journal is not None:
                m = cr.meter
                self.journal.stop(cr.record_id, reason, m.import_wh, m.export_wh,
                                  m.peak_charge_w, m.peak_discharge_w)  # fmt: skip
            cr.record_id = None

    # ------------------------------------------------------------------ telemetry
    def publish_measurements(self, now: float) -> None:
        from bptd.daemon import views

        self.publish("station", views.station(self, now))
        for name in self.connectors:
            self.publish(f"connector.{name}", views.connector(self, name, now))
        for n in self.modules:
            self.publish(f"module.{n}", views.module(self, n))

    # ------------------------------------------------------------------ queries
    def energized(self) -> bool:
        return any(s.state in ENERGIZED for s in self.station.sessions.values())

    def nodes_booted(self) -> tuple[int, int]:
        states = self.fb.states()
        up = sum(1 for s in states.values() if s is NodeState.OPERATIONAL)
        return up, len(states)
