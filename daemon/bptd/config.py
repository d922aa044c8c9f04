"""Station configuration: TOML -> one validated dataclass tree.

Loading collects every problem and raises them together as one :class:`ConfigError`
(the CLI prints it and exits with code 2). Each default is defined once, here.
The reference station (HARDWARE.md) ships as ``bptd/data/reference.toml`` and is used
when no file is given.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bptd.canbus import parse_bus_spec
from bptd.errors import BusSpecError, ConfigError
from bptd.paths import DEFAULT_CONFIG

TOPOLOGIES = ("parallel", "series")
CONNECTOR_KINDS = ("ccs", "chademo")


@dataclass(frozen=True)
class StationConfig:
    name: str = "bptd reference station"
    control_hz: float = 100.0
    telemetry_hz: float = 10.0
    profile: str = ""  # empty: the shipped bptd profile
    vendor: str = "bptd"
    model: str = "bptd-v2x"
    serial: str = "0000"


@dataclass(frozen=True)
class CanConfig:
    bus: str = "socketcan:can0"
    supervisor_node_id: int = 0x01
    heartbeat_ms: int = 1000  # supervisor heartbeat producer
    consumer_factor: float = 3.0  # node lost after factor x its heartbeat period
    boot_timeout_s: float = 10.0
    boot_retry_s: float = 1.0
    sdo_timeout_s: float = 0.3
    sdo_retries: int = 3
    rpdo_refresh_ms: int = 100  # RPDOs are re-sent at least this often
    rpdo_inhibit_ms: int = 50  # and at most this often on change (bus budget: docs/canopen.md)
    chademo_bus: str = "socketcan:can1"


@dataclass(frozen=True)
class ApiConfig:
    control: str = "ipc:///run/bptd/control.sock"
    telemetry: str = "ipc:///run/bptd/telemetry.sock"
    socket_group: str = ""
    socket_mode: int = 0o660
    # CURVE (required for tcp:// endpoints): Z85 keys or paths to zmq certificate files
    curve_secret_key: str = ""
    curve_public_key: str = ""
    curve_client_keys: tuple[str, ...] = ()  # allowed client public keys; empty: any
    hlc_timeout_s: float = 2.0  # EV data from the hlc frontend expires after this


@dataclass(frozen=True)
class RecordsConfig:
    dir: str = "/var/lib/bptd"
    fsync_interval_s: float = 10.0


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    chipset_node_id: int
    kind: Literal["ccs", "chademo"] = "ccs"
    serial: int = 0  # expected 0x1018:4, 0 = any
    heartbeat_ms: int = 100
    max_current_a: float = 200.0  # hard limits of the cable / inlet
    max_voltage_v: float = 1000.0
    max_power_w: float = 150000.0


@dataclass(frozen=True)
class ModuleConfig:
    n: int
    dcdc_node_id: int
    afe_node_id: int
    serial_dcdc: int = 0
    serial_afe: int = 0
    heartbeat_ms: int = 100


@dataclass(frozen=True)
class ModuleRatingsConfig:
    """What the supervisor assumes about one module (defaults: BMPU-R2-500-32)."""

    max_charge_current_a: float = 30.0
    max_discharge_current_a: float = 32.0
    max_charge_power_w: float = 10500.0
    max_discharge_power_w: float = 11000.0
    min_charge_voltage_v: float = 150.0
    min_discharge_voltage_v: float = 250.0
    max_voltage_v: float = 500.0
    max_phase_current_a: float = 16.0
    phases: int = 3
    grid_voltage_ln_v: float = 230.0
    max_ramp_w_per_s: float = 30000.0
    max_reactive_ramp_var_per_s: float = 5000.0
    min_power_factor: float = 0.4
    derating_start_c: float = 75.0
    derating_end_c: float = 95.0


@dataclass(frozen=True)
class ContactorConfiguration:
    id: int
    name: str
    routes: Mapping[str, tuple[int, ...]]
    topology: Literal["parallel", "series"] = "parallel"


@dataclass(frozen=True)
class SimConfig:
    """The virtual station's physics (module dynamics, grid, chipset timing)."""

    activation_delay_s: float = 0.05
    discharge_activation_delay_s: float = 0.05
    ramp_w_per_s: float = 30000.0
    grid_voltage_ln_v: float = 230.0
    grid_frequency_hz: float = 50.0
    ambient_c: float = 25.0
    thermal_time_constant_s: float = 60.0
    thermal_resistance_k_per_w: float = 0.075
    overtemp_trip_c: float = 100.0
    peak_efficiency: float = 0.955
    contactor_delay_s: float = 0.03
    lock_delay_s: float = 0.1
    imd_measure_time_s: float = 0.5
    output_capacitance_f: float = 0.002
    fast_discharge_time_constant_s: float = 0.3
    tick_s: float = 0.005


@dataclass(frozen=True)
class Config:
    station: StationConfig = field(default_factory=StationConfig)
    can: CanConfig = field(default_factory=CanConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    module_ratings: ModuleRatingsConfig = field(default_factory=ModuleRatingsConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    connectors: tuple[ConnectorConfig, ...] = ()
    modules: tuple[ModuleConfig, ...] = ()
    contactor_configurations: tuple[ContactorConfiguration, ...] = ()
    source: str = "<defaults>"

    def connector(self, name: str) -> ConnectorConfig:
        for c in self.connectors:
            if c.name == name:
                return c
        raise KeyError(name)

    def module(self, n: int) -> ModuleConfig:
        for m in self.modules:
            if m.n == n:
                return m
        raise KeyError(n)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- loading

_TABLES = {
    "station": StationConfig,
    "can": CanConfig,
    "api": ApiConfig,
    "records": RecordsConfig,
    "module_ratings": ModuleRatingsConfig,
    "sim": SimConfig,
}
_ARRAYS = {
    "connector": ("connectors", ConnectorConfig),
    "module": ("modules", ModuleConfig),
    "contactor_configuration": ("contactor_configurations", ContactorConfiguration),
}


def _check_value(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            problems.append(
                f"{where}: must be one of {', '.join(map(repr, allowed))}, got {value!r}"
            )
        return value
    if hint is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: must be an integer, got {value!r}")
        return value
    if hint is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            problems.append(f"{where}: must be a number, got {value!r}")
            return value
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{where}: must be a string, got {value!r}")
        return value
    if origin is Mapping or (isinstance(origin, type) and issubclass(origin, Mapping)):
        if not isinstance(value, Mapping):
            problems.append(f"{where}: must be a table, got {value!r}")
            return value
        _, vt = typing.get_args(hint)
        return {k: _check_value(v, vt, f"{where}.{k}", problems) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list | tuple):
            problems.append(f"{where}: must be a list, got {value!r}")
            return value
        (et, _) = typing.get_args(hint)
        return tuple(_check_value(v, et, f"{where}[{i}]", problems) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):  # pragma: no cover - not used yet
        return value
    raise TypeError(f"unsupported config type {hint!r}")


def _build(cls: type, table: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(table, Mapping):
        problems.append(f"{where}: must be a table")
        return None
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in names:
            problems.append(f"{where}: unknown key {key!r} (known: {', '.join(names)})")
            continue
        kwargs[key] = _check_value(value, hints[key], f"{where}.{key}", problems)
    for name, f in names.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in kwargs:
            problems.append(f"{where}: missing required key {name!r}")
    try:
        return cls(**kwargs)
    except TypeError:
        return None


def _positive(problems: list[str], where: str, **values: float) -> None:
    for key, v in values.items():
        if isinstance(v, int | float) and not v > 0:
            problems.append(f"{where}.{key}: must be > 0, got {v}")


def _node_id(problems: list[str], where: str, value: int) -> None:
    if isinstance(value, int) and not 1 <= value <= 0x7F:
        problems.append(f"{where}: node-id must be 1..127, got {value}")


def _validate(cfg: Config, problems: list[str]) -> None:
    for spec_key in ("bus", "chademo_bus"):
        try:
            parse_bus_spec(getattr(cfg.can, spec_key))
        except BusSpecError as exc:
            problems.append(f"can.{spec_key}: {exc}")
    _positive(
        problems,
        "station",
        control_hz=cfg.station.control_hz,
        telemetry_hz=cfg.station.telemetry_hz,
    )
    _positive(
        problems,
        "can",
        heartbeat_ms=cfg.can.heartbeat_ms,
        consumer_factor=cfg.can.consumer_factor,
        boot_timeout_s=cfg.can.boot_timeout_s,
        rpdo_refresh_ms=cfg.can.rpdo_refresh_ms,
    )
    for ep in ("control", "telemetry"):
        endpoint = getattr(cfg.api, ep)
        if not isinstance(endpoint, str) or not endpoint.startswith(("ipc://", "tcp://")):
            problems.append(f"api.{ep}: must be an ipc:// or tcp:// endpoint, got {endpoint!r}")
        elif endpoint.startswith("tcp://") and not (
            cfg.api.curve_secret_key and cfg.api.curve_public_key
        ):
            problems.append(
                f"api.{ep}: tcp endpoints need CURVE keys (api.curve_secret_key and "
                "api.curve_public_key); use ipc:// on the board"
            )
    _positive(problems, "api", hlc_timeout_s=cfg.api.hlc_timeout_s)
    if cfg.can.consumer_factor < 1.5:
        problems.append("can.consumer_factor: must be at least 1.5 (CiA 301 practice: 1.5-3)")
    r = cfg.module_ratings
    _positive(
        problems, "module_ratings", **{f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
    )
    if r.min_charge_voltage_v >= r.max_voltage_v or r.min_discharge_voltage_v >= r.max_voltage_v:
        problems.append("module_ratings: minimum voltages must be below max_voltage_v")
    if r.derating_start_c >= r.derating_end_c:
        problems.append("module_ratings: derating_start_c must be below derating_end_c")
    if not 0 < r.min_power_factor <= 1:
        problems.append("module_ratings.min_power_factor: must be in (0, 1]")
    _node_id(problems, "can.supervisor_node_id", cfg.can.supervisor_node_id)

    used: dict[int, str] = {cfg.can.supervisor_node_id: "supervisor"}

    def claim(node: int, who: str) -> None:
        _node_id(problems, who, node)
        if node in used:
            problems.append(f"{who}: node-id 0x{node:02X} is already used by {used[node]}")
        used[node] = who

    if not cfg.connectors:
        problems.append("at least one [[connector]] is needed")
    names = set()
    for c in cfg.connectors:
        where = f"connector {c.name!r}"
        if c.name in names:
            problems.append(f"{where}: duplicate connector name")
        names.add(c.name)
        if not c.name.isidentifier():
            problems.append(f"{where}: name must be a plain identifier (letters, digits, _)")
        claim(c.chipset_node_id, f"{where}.chipset_node_id")
        _positive(
            problems,
            where,
            heartbeat_ms=c.heartbeat_ms,
            max_current_a=c.max_current_a,
            max_voltage_v=c.max_voltage_v,
            max_power_w=c.max_power_w,
        )
    if not cfg.modules:
        problems.append("at least one [[module]] is needed")
    numbers = set()
    for m in cfg.modules:
        where = f"module {m.n}"
        if not 1 <= m.n <= 16:
            problems.append(f"{where}: n must be 1..16")
        if m.n in numbers:
            problems.append(f"{where}: duplicate module number")
        numbers.add(m.n)
        claim(m.dcdc_node_id, f"{where}.dcdc_node_id")
        claim(m.afe_node_id, f"{where}.afe_node_id")
        _positive(problems, where, heartbeat_ms=m.heartbeat_ms)
    ids = set()
    for cc in cfg.contactor_configurations:
        where = f"contactor_configuration {cc.id}"
        if cc.id in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(cc.id)
        if not cc.routes:
            problems.append(f"{where}: routes must name at least one connector")
        seen: set[int] = set()
        for conn, mods in cc.routes.items():
            if conn not in names:
                problems.append(f"{where}: routes name unknown connector {conn!r}")
            if not mods:
                problems.append(f"{where}: connector {conn!r} has no modules")
            for n in mods:
                if n not in numbers:
                    problems.append(f"{where}: routes name unknown module {n}")
                if n in seen:
                    problems.append(f"{where}: module {n} is routed to two connectors")
                seen.add(n)


def load_config(path: str | pathlib.Path | None = None) -> Config:
    """Load, validate and return the station config (the reference station by default)."""
    p = pathlib.Path(path) if path else DEFAULT_CONFIG
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(str(p), ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read: {exc.strerror}"]) from None
    return parse_config(text, str(p))


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    kwargs: dict[str, Any] = {"source": source}
    for key, value in data.items():
        if key in _TABLES:
            built = _build(_TABLES[key], value, key, problems)
            if built is not None:
                kwargs[key] = built
        elif key in _ARRAYS:
            attr, cls = _ARRAYS[key]
            if not isinstance(value, list):
                problems.append(f"{key}: must be an array of tables ([[{key}]])")
                continue
            items = [_build(cls, v, f"{key}[{i}]", problems) for i, v in enumerate(value)]
            kwargs[attr] = tuple(i for i in items if i is not None)
        else:
            known = ", ".join([*_TABLES, *(f"[[{k}]]" for k in _ARRAYS)])
            problems.append(f"unknown section {key!r} (known: {known})")
    if problems:
        raise ConfigError(source, problems)
    cfg = Config(**kwargs)
    _validate(cfg, problems)
    if problems:
        raise ConfigError(source, problems)
    return cfg
