"""Device profiles: semantic names <-> objects of a device's EDS.

The rest of bptd never writes a raw index. It asks the profile for ``dcdc.dc_voltage_v`` and
gets index, sub-index, scale and data type from the device's EDS. Another vendor's hardware
is adapted by a profile file (``profile = ...`` in the station config), not by code.

Every semantic name has a role:

- ``command``: written by the supervisor; must be writable and mapped into an RPDO,
- ``status``: produced by the device; must be mapped into a TPDO,
- ``param``: read or written by SDO only.
"""

from __future__ import annotations

import math
import pathlib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache

import canopen
from canopen.objectdictionary import ObjectDictionary, ODVariable
from canopen.objectdictionary import datatypes as dt

from bptd.errors import ProfileError
from bptd.paths import DEFAULT_PROFILE, eds_path

COMMAND, STATUS, PARAM = "command", "status", "param"

#: Every semantic name bptd uses, per device kind, with its role.
ROLES: dict[str, dict[str, str]] = {
    "chipset": {
        **dict.fromkeys(
            (
                "cp_mode",
                "pwm_duty_permille",
                "contactor_command",
                "lock_command",
                "imd_command",
                "fault_reset",
            ),
            COMMAND,
        ),
        **dict.fromkeys(
            (
                "cp_state",
                "cp_voltage_v",
                "pwm_duty_measured_permille",
                "proximity",
                "lock_state",
                "estop",
                "contactor_feedback",
                "hv_voltage_v",
                "insulation_kohm",
                "imd_state",
                "safety_state",
                "fault_word",
            ),
            STATUS,
        ),
        **dict.fromkeys(
            (
                "imd_warning_ohm_per_v",
                "imd_fault_ohm_per_v",
                "imd_measure_time_ms",
                "contactor_feedback_timeout_ms",
                "max_inlet_voltage_v",
            ),
            PARAM,
        ),
    },
    "dcdc": {
        **dict.fromkeys(
            (
                "state_request",
                "power_mode",
                "voltage_setpoint_v",
                "charge_current_limit_a",
                "discharge_current_limit_a",
            ),
            COMMAND,
        ),
        **dict.fromkeys(
            (
                "state",
                "power_mode_actual",
                "dc_voltage_v",
                "dc_current_a",
                "fault_word",
                "temperature_c",
                "derating_permille",
                "charge_current_available_a",
                "discharge_current_available_a",
            ),
            STATUS,
        ),
        **dict.fromkeys(
            (
                "max_charge_current_a",
                "max_discharge_current_a",
                "max_charge_power_w",
                "max_discharge_power_w",
                "min_charge_voltage_v",
                "min_discharge_voltage_v",
                "max_voltage_v",
                "derating_start_c",
                "derating_end_c",
            ),
            PARAM,
        ),
    },
    "afe": {
        **dict.fromkeys(
            (
                "state_request",
                "operating_mode",
                "active_power_setpoint_w",
                "reactive_power_setpoint_var",
                "power_factor_setpoint_permille",
                "active_ramp_w_per_s",
                "reactive_ramp_var_per_s",
                "v2l_voltage_v",
                "v2l_frequency_hz",
            ),
            COMMAND,
        ),
        **dict.fromkeys(
            (
                "state",
                "operating_mode_actual",
                "fault_word",
                "active_power_w",
                "reactive_power_var",
                "frequency_hz",
                "dc_bus_voltage_v",
                "voltage_l1_v",
                "voltage_l2_v",
                "voltage_l3_v",
                "current_l1_a",
                "current_l2_a",
                "current_l3_a",
                "power_factor_permille",
                "temperature_c",
            ),
            STATUS,
        ),
        **dict.fromkeys(
            (
                "max_phase_current_a",
                "phases",
                "nominal_voltage_ln_v",
                "max_active_ramp_w_per_s",
                "max_reactive_ramp_var_per_s",
                "min_power_factor_permille",
            ),
            PARAM,
        ),
    },
    "supervisor": {"station_state": PARAM},
}

KINDS = tuple(ROLES)

_INT_RANGES = {
    dt.BOOLEAN: (0, 1),
    dt.UNSIGNED8: (0, 0xFF),
    dt.UNSIGNED16: (0, 0xFFFF),
    dt.UNSIGNED32: (0, 0xFFFFFFFF),
    dt.INTEGER8: (-0x80, 0x7F),
    dt.INTEGER16: (-0x8000, 0x7FFF),
    dt.INTEGER32: (-0x80000000, 0x7FFFFFFF),
}


@dataclass(frozen=True)
class ObjectRef:
    """One semantic name resolved against an EDS."""

    name: str
    role: str
    index: int
    subindex: int
    od_name: str
    scale: float
    data_type: int
    raw_min: int
    raw_max: int

    @property
    def address(self) -> str:
        return f"0x{self.index:04X}:{self.subindex:02X}"

    def to_raw(self, value: float) -> int:
        """SI value -> raw integer; raises ``ValueError`` instead of wrapping around."""
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{self.name}: {value!r} is not a finite number")
        raw = round(value / self.scale) if self.scale != 1 else round(value)
        if not self.raw_min <= raw <= self.raw_max:
            raise ValueError(
                f"{self.name}: {value} does not fit {self.address} "
                f"(raw {raw}, range {self.raw_min}..{self.raw_max})"
            )
        return raw

    def to_si(self, raw: int) -> float:
        return raw * self.scale if self.scale != 1 else raw


@dataclass(frozen=True)
class DeviceProfile:
    """The resolved profile of one device kind."""

    kind: str
    eds: pathlib.Path
    objects: Mapping[str, ObjectRef]

    def __getitem__(self, name: str) -> ObjectRef:
        try:
            return self.objects[name]
        except KeyError:
            raise KeyError(
                f"{self.kind} profile has no {name!r}; known: {', '.join(sorted(self.objects))}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.objects)

    def by_address(self) -> dict[tuple[int, int], ObjectRef]:
        return {(r.index, r.subindex): r for r in self.objects.values()}

    def object_dictionary(self, node_id: int | None = None) -> ObjectDictionary:
        """A fresh object dictionary from this profile's EDS (``$NODEID`` resolved)."""
        return canopen.import_od(str(self.eds), node_id=node_id)


@dataclass(frozen=True)
class Profile:
    """Profiles of every device kind."""

    source: pathlib.Path
    devices: Mapping[str, DeviceProfile]

    def __getitem__(self, kind: str) -> DeviceProfile:
        return self.devices[kind]

    def ref(self, dotted: str) -> ObjectRef:
        """``ref("dcdc.dc_voltage_v")``."""
        kind, _, name = dotted.partition(".")
        return self.devices[kind][name]


def _lookup(od: ObjectDictionary, spec: str) -> ODVariable | None:
    if spec.lower().startswith("0x") and ":" in spec:
        idx_s, sub_s = spec.split(":", 1)
        try:
            index, sub = int(idx_s, 16), int(sub_s, 0 if sub_s.startswith("0x") else 16)
        except ValueError:
            return None
        if index not in od:
            return None
        obj = od[index]
        if isinstance(obj, ODVariable):
            return obj if sub == 0 else None
        return obj.get(sub) if hasattr(obj, "get") else None
    if "." in spec:
        rec_name, member = spec.split(".", 1)
        if rec_name not in od:
            return None
        obj = od[rec_name]
        if isinstance(obj, ODVariable):
            return None
        try:
            return obj[member]
        except KeyError:
            return None
    try:
        obj = od[spec]
    except KeyError:
        return None
    return obj if isinstance(obj, ODVariable) else None


def _mapped(od: ObjectDictionary, first_map: int) -> set[tuple[int, int]]:
    """Objects mapped by default into the PDOs whose mapping records start at ``first_map``."""
    out: set[tuple[int, int]] = set()
    for n in range(512):
        idx = first_map + n
        if idx not in od:
            break
        rec = od[idx]
        count = rec[0].default or 0
        for sub in range(1, int(count) + 1):
            value = rec[sub].default or 0
            out.add(((value >> 16) & 0xFFFF, (value >> 8) & 0xFF))
    return out


def _resolve(
    kind: str, table: Mapping[str, object], base_dir: pathlib.Path
) -> tuple[DeviceProfile | None, list[str]]:
    problems: list[str] = []
    where = f"[{kind}]"
    eds_name = table.get("eds")
    if not isinstance(eds_name, str):
        return None, [f"{where}: 'eds' must name the device's EDS file"]
    path = eds_path(eds_name)
    if not path.is_absolute() and not path.exists():
        path = base_dir / eds_name
    try:
        od = canopen.import_od(str(path))
    except FileNotFoundError:
        return None, [f"{where}: EDS file {path} not found"]
    except Exception as exc:  # the EDS parser raises many kinds of errors
        return None, [f"{where}: EDS file {path} could not be read: {exc}"]
    objects = table.get("objects", {})
    if not isinstance(objects, Mapping):
        return None, [f"{where}.objects must be a table"]
    rpdo, tpdo = _mapped(od, 0x1600), _mapped(od, 0x1A00)
    roles = ROLES[kind]
    refs: dict[str, ObjectRef] = {}
    for name in sorted(set(roles) - set(objects)):
        problems.append(f"{where}: {name!r} is not mapped to any object")
    for name, spec in objects.items():
        if name not in roles:
            problems.append(f"{where}: unknown name {name!r} (known: {', '.join(sorted(roles))})")
            continue
        scale_override = None
        if isinstance(spec, Mapping):
            scale_override = spec.get("scale")
            spec = spec.get("od")
        if not isinstance(spec, str):
            problems.append(
                f"{where}: {name!r} must name an object ('record.member' or '0xIDX:SUB')"
            )
            continue
        var = _lookup(od, spec)
        if var is None:
            problems.append(f"{where}: {name!r} -> {spec!r}: no such object in {path.name}")
            continue
        if var.data_type not in _INT_RANGES:
            problems.append(f"{where}: {name!r} -> {spec!r}: not an integer object")
            continue
        role = roles[name]
        addr = (var.index, var.subindex)
        if role == COMMAND and "w" not in var.access_type:
            problems.append(f"{where}: command {name!r} -> {spec!r} is not writable")
        if role == COMMAND and addr not in rpdo:
            problems.append(f"{where}: command {name!r} -> {spec!r} is not mapped into an RPDO")
        if role == STATUS and addr not in tpdo:
            problems.append(f"{where}: status {name!r} -> {spec!r} is not mapped into a TPDO")
        scale = float(scale_override) if scale_override is not None else float(var.factor or 1)
        lo, hi = _INT_RANGES[var.data_type]
        refs[name] = ObjectRef(
            name=name,
            role=role,
            index=var.index,
            subindex=var.subindex,
            od_name=var.qualname if hasattr(var, "qualname") else var.name,
            scale=scale,
            data_type=var.data_type,
            raw_min=lo,
            raw_max=hi,
        )
    if problems:
        return None, problems
    return DeviceProfile(kind=kind, eds=path, objects=refs), []


def load_profile(path: str | pathlib.Path | None = None) -> Profile:
    """Load and check a profile file; raise :class:`ProfileError` listing every problem."""
    return _load_profile(pathlib.Path(path) if path else DEFAULT_PROFILE)


@cache
def _load_profile(path: pathlib.Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    devices: dict[str, DeviceProfile] = {}
    for kind in KINDS:
        table = data.get(kind)
        if not isinstance(table, Mapping):
            problems.append(f"missing table [{kind}]")
            continue
        dev, errs = _resolve(kind, table, path.parent)
        problems += errs
        if dev:
            devices[kind] = dev
    for extra in sorted(set(data) - set(KINDS)):
        problems.append(f"unknown device kind [{extra}] (known: {', '.join(KINDS)})")
    if problems:
        raise ProfileError(str(path), problems)
    return Profile(source=path, devices=devices)
