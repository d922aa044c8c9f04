"""Plain-data pictures of the station for ``status`` and the telemetry topics.

Units SI; sign: positive = forward (grid to vehicle, charging). Values the daemon does not
know (a node that never reported) are ``None``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from bptd import __version__
from bptd.limits.layout import BINDING_NAMES

if TYPE_CHECKING:
    from bptd.daemon.loop import ControlLoop


def _r(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _cp(value: float | None) -> str | None:
    return None if value is None or not 0 <= int(value) <= 5 else "ABCDEF"[int(value)]


def station(loop: ControlLoop, now: float) -> dict[str, Any]:
    fb = loop.fb
    load = fb.bus_load(now)
    up, total = loop.nodes_booted()
    return {
        "name": loop.cfg.station.name,
        "version": __version__,
        "uptime_s": _r(now - loop.started, 1),
        "bus": {"up": fb.bus_up, "load_percent": _r(load.percent, 2)},
        "bus_load_percent": _r(load.percent, 2),
        "nodes": {k: s.value for k, s in fb.states().items()},
        "nodes_operational": up,
        "nodes_total": total,
        "loop": {
            "hz": loop.cfg.station.control_hz,
            "ticks": loop.ticks,
            "tick_errors": loop.tick_errors,
        },
        "contactor_configuration": loop.station.ownership.selected,
    }


def connector(loop: ControlLoop, name: str, now: float) -> dict[str, Any]:
    cr = loop.connectors[name]
    s = loop.station[name]
    i = cr.index
    lim = loop.engine.limits
    out = loop.outputs.get(name)
    alloc = s.allocation
    ev = loop.hlc.entries[name].data
    fresh = loop.hlc.fresh(name, now)
    hlc = out.hlc if out is not None else None
    return {
        "connector": name,
        "kind": s.connector.kind,
        "state": s.state.value,
        "available": loop.fb.node_state(f"chipset.{name}").value == "operational",
        "fault": None if s.fault is None else s.fault.value,
        "fault_detail": s.fault_detail or None,
        "allocation": None
        if alloc is None
        else {
            "modules": list(alloc.modules),
            "topology": alloc.topology,
            "configuration": alloc.configuration,
            "configuration_name": alloc.configuration_name,
        },
        "modules": list(alloc.modules) if alloc else [],
        "bidirectional": s.bidirectional,
        "control": s.control.value,
        "setpoint_w": s.setpoint_w,
        "reactive_power_var": s.reactive_power_var,
        "requested_current_a": _r(s.last_power.requested_current_a),
        "applied_current_a": _r(cr.applied_current_a),
        "voltage_v": _r(cr.voltage_v, 2),
        "output_voltage_v": _r(loop.fb.values(f"chipset.{name}").get("hv_voltage_v"), 1),
        "contactor_feedback": loop.fb.values(f"chipset.{name}").get("contactor_feedback"),
        "cp_state": _cp(loop.fb.values(f"chipset.{name}").get("cp_state")),
        "current_a": _r(cr.current_a, 3),
        "power_w": _r(cr.power_w, 1),
        "limits": {
            "charge_current_a": _r(cr.charge_limit_a),
            "discharge_current_a": _r(cr.discharge_limit_a),
            "charge_power_w": _r(float(lim.charge_power_w[i]), 1),
            "discharge_power_w": _r(float(lim.discharge_power_w[i]), 1),
            "binding_charge": cr.binding[0],
            "binding_discharge": cr.binding[1],
        },
        "user_limits": cr.limits.as_dict(),
        **cr.meter.as_dict(),
        "session_id": cr.record_id,
        "ev": {
            "present": fresh and ev.present,
            "bpt": ev.bpt,
            "phase": ev.phase.value if fresh else "none",
            "soc": ev.soc if fresh else None,
            "max_voltage_v": ev.max_voltage_v,
            "max_charge_current_a": ev.max_charge_current_a,
            "max_discharge_current_a": ev.max_discharge_current_a,
            "age_s": _r(loop.hlc.age_s(name, now), 2),
        },
        "hlc": None
        if hlc is None
        else {
            "cable_check_done": hlc.cable_check_done,
            "isolation": hlc.isolation,
            "precharge_done": hlc.precharge_done,
            "stop_requested": hlc.stop_requested,
            "power_limit_reached": hlc.power_limit_reached,
        },
        "since": _r(s.entered_at, 3),
    }


def module(loop: ControlLoop, n: int) -> dict[str, Any]:
    fb = loop.fb
    mr = loop.modules[n]
    i = mr.index
    dcdc, afe = fb.values(f"dcdc.{n}"), fb.values(f"afe.{n}")
    lim = loop.engine.limits
    v, a = dcdc.get("dc_voltage_v"), dcdc.get("dc_current_a")
    td, ta = dcdc.get("temperature_c"), afe.get("temperature_c")
    temps = [t for t in (td, ta) if t is not None]
    return {
        "module": n,
        "connector": loop.station.ownership.owner.get(n),
        "nodes": {
            "dcdc": fb.node_state(f"dcdc.{n}").value,
            "afe": fb.node_state(f"afe.{n}").value,
        },
        "online": bool(loop._online[i] > 0.5),
        "dcdc_state": dcdc.get("state"),
        "afe_state": afe.get("state"),
        "voltage_v": _r(v, 2),
        "current_a": _r(a, 3),
        "power_w": _r(v * a, 1) if v is not None and a is not None else None,
        "ac_power_w": _r(afe.get("active_power_w"), 1),
        "reactive_power_var": _r(afe.get("reactive_power_var"), 1),
        "grid_frequency_hz": _r(afe.get("frequency_hz"), 2),
        "temperature_c": _r(max(temps), 1) if temps else None,
        "dcdc_temperature_c": _r(td, 1),
        "afe_temperature_c": _r(ta, 1),
        "derating": mr.derating or bool(int(dcdc.get("fault_word", 0)) & 0x80),
        "derating_permille": dcdc.get("derating_permille"),
        "tripped": mr.tripped,
        "dc_fault_word": dcdc.get("fault_word"),
        "ac_fault_word": afe.get("fault_word"),
        "limits": {
            "charge_current_a": _r(float(lim.module_charge_current_a[i])),
            "discharge_current_a": _r(float(lim.module_discharge_current_a[i])),
            "binding_charge": BINDING_NAMES[int(lim.module_binding_charge[i])],
            "binding_discharge": BINDING_NAMES[int(lim.module_binding_discharge[i])],
        },
        "command": dict(mr.command),
        "settings": mr.settings.as_dict(),
    }


def status(loop: ControlLoop, now: float | None = None) -> dict[str, Any]:
    now = time.monotonic() if now is None else now
    return {
        "station": station(loop, now),
        "connectors": {name: connector(loop, name, now) for name in loop.connectors},
        "modules": {str(n): module(loop, n) for n in loop.modules},
    }
