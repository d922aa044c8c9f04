"""The API commands of the daemon: one table of name -> (schema, handler, urgent).

Every handler runs in the control loop's thread between two ticks, after its arguments
passed :func:`bptd.daemon.schema.validate`. A refused command raises
:class:`~bptd.api.protocol.ApiError` (the server replies with its code) and changes
nothing. A command that changes what the modules should do is *urgent*: the loop runs a
tick right after it, so its RPDOs leave at once. Values above a configured hard limit are
clamped, never raised: the reply says what was applied.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bptd import __version__
from bptd.api.protocol import ApiError, ErrorCode
from bptd.daemon import views
from bptd.daemon.hlc import EV_FIELDS
from bptd.daemon.schema import Arg, Schema, describe, validate
from bptd.daemon.state import INF, MODULE_MODES
from bptd.session import Control, SessionError

if TYPE_CHECKING:
    from bptd.daemon.loop import ControlLoop
    from bptd.sim.station import VirtualStation

log = structlog.get_logger("bptd.api")

Handler = Callable[[dict[str, Any]], Any]

CONNECTOR = Arg("str", required=True, doc="connector name (see `config`)")
MAGNITUDE_W = Arg("number", min=0, max=1e6, nullable=True, doc="W, >= 0; null clears")
MAGNITUDE_A = Arg("number", min=0, max=2000, nullable=True, doc="A, >= 0; null clears")
MAGNITUDE_V = Arg("number", min=0, max=1500, nullable=True, doc="V, >= 0; null clears")

LIMIT_ARGS: dict[str, Arg] = {
    "max_charge_power_w": MAGNITUDE_W,
    "max_discharge_power_w": MAGNITUDE_W,
    "max_charge_current_a": MAGNITUDE_A,
    "max_discharge_current_a": MAGNITUDE_A,
    "max_charge_voltage_v": MAGNITUDE_V,
    "max_discharge_voltage_v": MAGNITUDE_V,
    "max_ac_charge_current_a": MAGNITUDE_A,
    "max_ac_discharge_current_a": MAGNITUDE_A,
}


@dataclass(frozen=True)
class Command:
    schema: Schema
    handler: Handler
    urgent: bool = False
    doc: str = ""


class Commands:
    """The daemon's command table, bound to one control loop (and a virtual station)."""

    def __init__(self, loop: ControlLoop, sim: VirtualStation | None = None) -> None:
        self.loop = loop
        self.sim = sim
        self.served = 0
        self.table: dict[str, Command] = {
            "ping": Command({}, self.ping, doc="liveness and version"),
            "status": Command(
                {"connector": Arg("str", doc="only this connector")}, self.status,
                doc="the whole station",
            ),
            "config": Command({}, self.config, doc="the station configuration in force"),
            "commands": Command({}, self.commands, doc="every command with its arguments"),
            "authorize": Command({"connector": CONNECTOR}, self.session("authorize"), True),
            "allocate": Command(
                {
                    "connector": CONNECTOR,
                    "modules": Arg("int_list", required=True, min=1, max=64),
                    "topology": Arg("str", choices=("parallel", "series")),
                },
                self.allocate, True,
            ),
            "set_limits": Command({"connector": CONNECTOR, **LIMIT_ARGS}, self.set_limits, True),
            "set_mode": Command(
                {
                    "connector": CONNECTOR,
                    "bidirectional": Arg("bool", required=True),
                    "control": Arg("str", choices=tuple(c.value for c in Control)),
                },
                self.set_mode, True,
            ),
            "setpoint": Command(
                {
                    "connector": CONNECTOR,
                    "power_w": Arg("number", required=True, min=-1e6, max=1e6),
                    "reactive_power_var": Arg("number", min=-1e6, max=1e6, nullable=True),
                },
                self.setpoint, True,
            ),
            "start": Command({"connector": CONNECTOR}, self.session("start"), True),
            "stop": Command({"connector": CONNECTOR}, self.session("stop"), True),
            "terminate": Command({"connector": CONNECTOR}, self.session("terminate"), True),
            "cancel": Command({"connector": CONNECTOR}, self.session("cancel"), True),
            "rearm": Command({"connector": CONNECTOR}, self.session("rearm"), True),
            "reset": Command({"connector": CONNECTOR}, self.session("reset"), True),
            "supervisor_request": Command(
                {
                    "connector": CONNECTOR,
                    "code": Arg("int", required=True, min=0, max=7),
                    "bidirectional": Arg("bool"),
                    "control": Arg("str", choices=tuple(c.value for c in Control)),
                    "configuration": Arg("int", min=1, max=255),
                },
                self.supervisor_request, True,
            ),
            "select_configuration": Command(
                {"id": Arg("int", required=True, min=1, max=255)}, self.select_configuration,
            ),
            "module": Command(
                {
                    "n": Arg("int", required=True, min=1, max=64),
                    "mode": Arg("str", choices=tuple(MODULE_MODES)),
                    "reactive_power_var": Arg("number", min=-1e6, max=1e6),
                    "power_factor": Arg("number", min=-1, max=1),
                    "ramp_w_per_s": Arg("number", min=0, max=1e7),
                    "v2l_voltage_v": Arg("number", min=0, max=1000),
                    "v2l_frequency_hz": Arg("number", min=0, max=100),
                },
                self.module, True,
            ),
            "hlc_update": Command({"connector": CONNECTOR, **EV_FIELDS}, self.hlc_update, True),
            "hlc_status": Command({"connector": CONNECTOR}, self.hlc_status),
            "hlc_end": Command({"connector": CONNECTOR}, self.hlc_end, True),
            "sessions": Command(
                {"limit": Arg("int", min=1, max=100000), "connector": Arg("str")}, self.sessions
            ),
        }  # fmt: skip
        if sim is not None:
            self.table["sim"] = Command(
                {"action": Arg("str", required=True), "*": Arg("any")}, self.sim_action, True
            )

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: dict[str, Any]) -> Any:
        """Answer one parsed request (the :class:`CommandServer` handler)."""
        received = time.perf_counter()
        name = request["cmd"]
        cmd = self.table.get(name)
        if cmd is None:
            raise ApiError(
                ErrorCode.UNKNOWN_COMMAND,
                f"unknown command {name[:60]!r}; `commands` lists them",
            )
        if "*" in cmd.schema:  # free-form arguments (sim actions check their own)
            args = {k: v for k, v in request.items() if k not in ("cmd", "id")}
            validate(name, {"action": request.get("action")}, {"action": cmd.schema["action"]})
        else:
            args = validate(name, request, cmd.schema)
        try:
            result = cmd.handler(args)
        except ApiError as exc:
            log.info("command", cmd=name, ok=False, code=str(exc.code), error=exc.message,
                     **_brief(args))  # fmt: skip
            raise
        self.served += 1
        if cmd.urgent:
            marker = "" if name.startswith("hlc_") else name  # the EV's cycle is no event
            self.loop.command_received(received, marker, args)
        if name not in ("ping", "status", "hlc_update", "hlc_status", "sessions", "config",
                        "commands"):  # fmt: skip
            log.info("command", cmd=name, ok=True, **_brief(args))
        return result

    # ------------------------------------------------------------------ helpers
    def _session(self, args: dict[str, Any]) -> Any:
        try:
            return self.loop.station[args["connector"]]
        except SessionError as exc:
            raise ApiError(exc.code, exc.message) from None

    def session(self, method: str) -> Handler:
        def handler(args: dict[str, Any]) -> Any:
            s = self._session(args)
            return {"connector": s.name, **getattr(s, method)()}

        return handler

    # ------------------------------------------------------------------ commands
    def ping(self, args: dict[str, Any]) -> Any:
        return {
            "pong": True,
            "role": "daemon",
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.loop.started, 3),
            "sim": self.sim is not None,
        }

    def status(self, args: dict[str, Any]) -> Any:
        now = time.monotonic()
        if "connector" in args:
            self._session(args)
            return views.connector(self.loop, args["connector"], now)
        return views.status(self.loop, now)

    def config(self, args: dict[str, Any]) -> Any:
        cfg = self.loop.cfg
        data = dataclasses.asdict(cfg)
        data["source"] = str(cfg.source) if getattr(cfg, "source", None) else None
        return data

    def commands(self, args: dict[str, Any]) -> Any:
        return {
            name: {"arguments": describe({k: a for k, a in c.schema.items() if k != "*"}),
                   "doc": c.doc}
            for name, c in self.table.items()
        }  # fmt: skip

    def allocate(self, args: dict[str, Any]) -> Any:
        s = self._session(args)
        return {"connector": s.name,
                **s.allocate(args["modules"], args.get("topology", "parallel"))}  # fmt: skip

    def set_mode(self, args: dict[str, Any]) -> Any:
        s = self._session(args)
        result = s.set_mode(args["bidirectional"], args.get("control", s.control.value))
        return {"connector": s.name, **result}

    def setpoint(self, args: dict[str, Any]) -> Any:
        s = self._session(args)
        result = s.setpoint(args["power_w"], args.get("reactive_power_var"))
        return {"connector": s.name, **result, **self._available(s.name, result["power_w"])}

    def _available(self, name: str, power_w: float) -> dict[str, Any]:
        """What the connector can deliver of ``power_w`` now: every limit in force (module
        SOA at the present voltage, derating, EV, user and hard limits), or the ratings of
        the allocated modules while the output is not yet live."""
        loop = self.loop
        cr = loop.connectors[name]
        lim = loop.engine.limits
        mods = cr.allocation[0]
        rc = loop.cfg.module_ratings
        live = cr.voltage_v >= rc.min_charge_voltage_v
        if power_w >= 0:
            cap = float(lim.charge_power_w[cr.index]) if live else rc.max_charge_power_w * len(mods)
            binding = cr.binding[0] if live else "module_rating"
        else:
            cap = (
                -float(lim.discharge_power_w[cr.index])
                if live
                else (rc.max_discharge_power_w * len(mods))
            )
            binding = cr.binding[1] if live else "module_rating"
        if not mods:
            return {"available_power_w": None, "limited_by": "no_modules"}
        effective = max(-cap, min(cap, power_w))
        return {
            "available_power_w": round(effective, 1),
            "limited_by": binding if abs(effective) < abs(power_w) else None,
        }

    def set_limits(self, args: dict[str, Any]) -> Any:
        s = self._session(args)
        cr = self.loop.connectors[s.name]
        conn = s.connector
        n_mod = max(len(self.loop.modules), 1)
        rc = self.loop.cfg.module_ratings
        hard = {
            "max_charge_power_w": conn.max_power_w,
            "max_discharge_power_w": conn.max_power_w,
            "max_charge_current_a": conn.max_current_a,
            "max_discharge_current_a": conn.max_current_a,
            "max_charge_voltage_v": conn.max_voltage_v,
            "max_discharge_voltage_v": conn.max_voltage_v,
            "max_ac_charge_current_a": rc.max_phase_current_a * n_mod,
            "max_ac_discharge_current_a": rc.max_phase_current_a * n_mod,
        }
        clamped: dict[str, dict[str, float]] = {}
        for key in LIMIT_ARGS:
            if key not in args:
                continue
            value = args[key]
            if value is None:
                setattr(cr.limits, key, INF)
                continue
            applied = min(float(value), hard[key])
            if applied < value:
                clamped[key] = {"requested": value, "applied": applied, "hard_limit": hard[key]}
            setattr(cr.limits, key, applied)
        ul = cr.limits
        self.loop.engine.set_user_limits(
            cr.index,
            charge_current_a=ul.max_charge_current_a,
            discharge_current_a=-ul.max_discharge_current_a,
            charge_power_w=ul.max_charge_power_w,
            discharge_power_w=-ul.max_discharge_power_w,
            ac_current_a=ul.max_ac_charge_current_a,
            ac_discharge_current_a=ul.max_ac_discharge_current_a,
        )
        return {"connector": s.name, "limits": ul.as_dict(), "clamped": clamped}

    def supervisor_request(self, args: dict[str, Any]) -> Any:
        s = self._session(args)
        if "configuration" in args:
            self._select(args["configuration"])
        return {"connector": s.name, **s.supervisor_request(
            args["code"], bidirectional=args.get("bidirectional"), control=args.get("control"),
        )}  # fmt: skip

    def _select(self, config_id: int) -> dict[str, Any]:
        try:
            conf = self.loop.station.select_configuration(config_id)
        except SessionError as exc:
            raise ApiError(exc.code, exc.message) from None
        return {"id": conf.id, "name": conf.name, "topology": conf.topology,
                "routes": {k: list(v) for k, v in conf.routes.items()}}  # fmt: skip

    def select_configuration(self, args: dict[str, Any]) -> Any:
        return self._select(args["id"])

    def module(self, args: dict[str, Any]) -> Any:
        n = args["n"]
        mr = self.loop.modules.get(n)
        if mr is None:
            known = ", ".join(map(str, self.loop.modules))
            raise ApiError(ErrorCode.INVALID_ARGUMENT, f"no module {n}; modules: {known}")
        rc = self.loop.cfg.module_ratings
        s_max = rc.max_phase_current_a * rc.grid_voltage_ln_v * rc.phases
        st = dataclasses.replace(mr.settings)
        clamped: dict[str, dict[str, float]] = {}
        if "mode" in args:
            st.mode = args["mode"]
        if "reactive_power_var" in args:
            q = args["reactive_power_var"]
            st.reactive_power_var = max(-s_max, min(s_max, q))
            if st.reactive_power_var != q:
                clamped["reactive_power_var"] = {"requested": q,
                                                 "applied": st.reactive_power_var}  # fmt: skip
        if "power_factor" in args:
            pf = args["power_factor"]
            if abs(pf) < rc.min_power_factor:
                raise ApiError(ErrorCode.OUT_OF_RANGE,
                               f"|power_factor| must be >= {rc.min_power_factor:g} "
                               "(module rating) and <= 1")  # fmt: skip
            st.power_factor = pf
        if "ramp_w_per_s" in args:
            r = args["ramp_w_per_s"]
            if r <= 0:
                raise ApiError(ErrorCode.OUT_OF_RANGE, "ramp_w_per_s must be > 0")
            st.ramp_w_per_s = min(r, rc.max_ramp_w_per_s)
            if st.ramp_w_per_s != r:
                clamped["ramp_w_per_s"] = {"requested": r, "applied": st.ramp_w_per_s}
        if "v2l_voltage_v" in args:
            v = args["v2l_voltage_v"]
            if not 0.8 * rc.grid_voltage_ln_v <= v <= 1.1 * rc.grid_voltage_ln_v:
                raise ApiError(ErrorCode.OUT_OF_RANGE,
                               f"v2l_voltage_v must be within {0.8 * rc.grid_voltage_ln_v:g}.."
                               f"{1.1 * rc.grid_voltage_ln_v:g} V")  # fmt: skip
            st.v2l_voltage_v = v
        if "v2l_frequency_hz" in args:
            f = args["v2l_frequency_hz"]
            if not 45.0 <= f <= 65.0:
                raise ApiError(ErrorCode.OUT_OF_RANGE, "v2l_frequency_hz must be within 45..65 Hz")
            st.v2l_frequency_hz = f
        mr.settings = st
        self.loop.update_ramp_rates()
        return {"module": n, "settings": st.as_dict(), "clamped": clamped}

    # ------------------------------------------------------------------ hlc
    def _report(self, name: str) -> dict[str, Any]:
        loop = self.loop
        s = loop.station[name]
        cr = loop.connectors[name]
        out = loop.outputs.get(name)
        rc = loop.cfg.module_ratings
        conn = s.connector
        alloc = s.allocation
        series = alloc.series_count if alloc else 1
        n = len(alloc.modules) if alloc else max(len(loop.modules), 1)
        strings = max(n // series, 1)
        ul = cr.limits
        # what the station offers this connector, without the vehicle's own limits (the
        # frontend announces these to the vehicle): the ratings of the allocated modules (of
        # every module before an allocation), the connector's hard limits, the user limits
        evse = {
            "max_voltage_v": min(conn.max_voltage_v, rc.max_voltage_v * series,
                                 ul.max_charge_voltage_v),
            "min_voltage_v": rc.min_charge_voltage_v * series,
            "min_discharge_voltage_v": rc.min_discharge_voltage_v * series,
            "max_charge_current_a": min(conn.max_current_a, rc.max_charge_current_a * strings,
                                        ul.max_charge_current_a),
            "max_discharge_current_a": min(conn.max_current_a,
                                           rc.max_discharge_current_a * strings,
                                           ul.max_discharge_current_a),
            "max_charge_power_w": min(conn.max_power_w, rc.max_charge_power_w * n,
                                      ul.max_charge_power_w),
            "max_discharge_power_w": min(conn.max_power_w, rc.max_discharge_power_w * n,
                                         ul.max_discharge_power_w),
        }  # fmt: skip
        if not s.bidirectional:
            evse["max_discharge_current_a"] = evse["max_discharge_power_w"] = 0.0
        if alloc is not None:
            i = cr.index
            lim = loop.engine.limits
            in_force = {
                "charge_current_a": _finite(cr.charge_limit_a),
                "discharge_current_a": _finite(-cr.discharge_limit_a),
                "charge_power_w": _finite(float(lim.charge_power_w[i])),
                "discharge_power_w": _finite(-float(lim.discharge_power_w[i])),
            }
        else:
            in_force = None
        hlc = out.hlc if out is not None else None
        chip = s.inputs.chipset
        cp = int(chip.get("cp_state", -1)) if chip is not None else -1
        return {
            "connector": name,
            "state": s.state.value,
            "cp": "ABCDEF"[cp] if 0 <= cp < 6 else None,
            "cable_check_done": bool(hlc and hlc.cable_check_done),
            "isolation": hlc.isolation if hlc else "invalid",
            "precharge_done": bool(hlc and hlc.precharge_done),
            "present_voltage_v": round(hlc.present_voltage_v, 3) if hlc else 0.0,
            "present_current_a": round(hlc.present_current_a, 3) if hlc else 0.0,
            "stop_requested": bool(hlc and hlc.stop_requested),
            "power_limit_reached": bool(hlc and hlc.power_limit_reached),
            "bidirectional": s.bidirectional,
            "control": s.control.value,
            "fault": None if s.fault is None else s.fault.value,
            "evse": {k: _finite(v) for k, v in evse.items()},
            "in_force": in_force,
        }

    def hlc_update(self, args: dict[str, Any]) -> Any:
        name = self._session(args).name
        fields = {k: v for k, v in args.items() if k != "connector"}
        self.loop.hlc.update(name, time.monotonic(), fields)
        return self._report(name)

    def hlc_status(self, args: dict[str, Any]) -> Any:
        return self._report(self._session(args).name)

    def hlc_end(self, args: dict[str, Any]) -> Any:
        name = self._session(args).name
        self.loop.hlc.end(name)
        return self._report(name)

    # ------------------------------------------------------------------ records
    def sessions(self, args: dict[str, Any]) -> Any:
        j = self.loop.journal
        records = [] if j is None else j.sessions()
        if "connector" in args:
            name = args["connector"]
            known = sorted(set(self.loop.connectors) | {r.connector for r in records})
            if name not in known:  # a renamed connector's records are still found
                raise ApiError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"no connector {name[:60]!r} in the config or the records; known: {known}",
                )
            records = [r for r in records if r.connector == name]
        limit = args.get("limit", 100)
        open_ids = {cr.record_id: cr for cr in self.loop.connectors.values() if cr.record_id}
        out = []
        for r in records[-limit:]:
            d = r.as_dict()
            live = open_ids.get(r.session_id)
            if live is not None:  # the open session: energy so far, not the last fsync
                d.update(live.meter.as_dict())
                d["state"] = self.loop.station[live.name].state.value
            out.append(d)
        return {"sessions": out, "journal": None if j is None else str(j.path)}

    # ------------------------------------------------------------------ simulation
    def sim_action(self, args: dict[str, Any]) -> Any:
        from bptd.sim.server import handle_sim

        assert self.sim is not None
        return handle_sim(self.sim, {"cmd": "sim", **args})


def _finite(x: float) -> float:
    return round(x, 3) if math.isfinite(x) else 1e6


def _brief(args: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a log line: short values only; names the log call uses itself get arg_."""
    return {(f"arg_{k}" if k in ("self", "event", "ok", "code", "error") else k):
            (v if not isinstance(v, str) else v[:60]) for k, v in list(args.items())[:12]
            if k not in ("cmd", "id")}  # fmt: skip
