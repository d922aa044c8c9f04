"""Module ratings: frozen dataclasses, the BMPU-R2-500-32 defaults, packing into arrays.

Sign convention: positive is forward (grid to vehicle, charging), negative is reverse
(discharging). Discharge ratings are therefore negative numbers (``-32 A``, ``-11 kW``);
:func:`pack_ratings` turns them into magnitudes for the kernels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from bptd.limits import layout as L


@dataclass(frozen=True)
class Curve:
    """Piecewise-linear ``y(x)``, held constant beyond the first and last points."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", tuple(float(v) for v in self.x))
        object.__setattr__(self, "y", tuple(float(v) for v in self.y))
        if not self.x or len(self.x) != len(self.y):
            raise ValueError("a curve needs as many y as x values, at least one")
        if any(b <= a for a, b in itertools.pairwise(self.x)):
            raise ValueError("curve x values must be strictly increasing")
        if not all(math.isfinite(v) for v in self.x + self.y):
            raise ValueError("curve points must be finite")

    def __call__(self, x: float) -> float:
        return float(np.interp(x, self.x, self.y))


@dataclass(frozen=True)
class EfficiencyMap:
    """Converter efficiency over DC voltage x signed DC power, bilinear, clamped at the edges.

    ``efficiency[i][j]`` belongs to ``voltage_v[i]`` and ``power_w[j]``. For charging
    (``power_w > 0``) it is DC out / AC in; for discharging it is AC out / DC in.
    """

    voltage_v: tuple[float, ...]
    power_w: tuple[float, ...]
    efficiency: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "voltage_v", tuple(float(v) for v in self.voltage_v))
        object.__setattr__(self, "power_w", tuple(float(v) for v in self.power_w))
        object.__setattr__(
            self, "efficiency", tuple(tuple(float(e) for e in row) for row in self.efficiency)
        )
        for axis in (self.voltage_v, self.power_w):
            if not axis or any(b <= a for a, b in itertools.pairwise(axis)):
                raise ValueError("efficiency axes must be non-empty and strictly increasing")
        if len(self.efficiency) != len(self.voltage_v) or any(
            len(row) != len(self.power_w) for row in self.efficiency
        ):
            raise ValueError("efficiency grid must be len(voltage_v) x len(power_w)")
        if not all(0.0 < e <= 1.0 for row in self.efficiency for e in row):
            raise ValueError("efficiencies must lie in (0, 1]")


def _loss_model_map() -> EfficiencyMap:
    """Default BMPU map: losses = 90 W + 3.6e-6 k(V) P^2, k rising at low voltage.

    Peaks near 96.5 % at 5 kW, about 95.5 % at rated power: the AC side (16 A x 230 V x 3 =
    11.04 kVA) then supports the DC ratings at nominal grid voltage, as the datasheet states.
    """
    volts = (150.0, 250.0, 350.0, 450.0, 500.0)
    powers = (-11000.0, -8000.0, -5000.0, -2500.0, -1000.0, -500.0, -250.0)
    powers = powers + tuple(-p for p in reversed(powers[1:])) + (10500.0,)
    grid = []
    for v in volts:
        k = 1.0 + 0.15 * (400.0 - v) / 250.0
        row = []
        for p in powers:
            loss = 90.0 + 3.6e-6 * k * p * p
            a = abs(p)
            eff = a / (a + loss) if p > 0 else (a - loss) / a
            row.append(round(eff, 4))
        grid.append(tuple(row))
    return EfficiencyMap(volts, powers, tuple(grid))


#: Thermal derating (the datasheet gives no curve): full rating to 75 degC, linear to nothing
#: at 95 degC, as ``module_ratings.derating_start_c`` / ``derating_end_c`` of the station
#: config (one source of truth: :func:`ratings_from_config` builds the curve from there).
DEFAULT_THERMAL_DERATING = Curve((75.0, 95.0), (1.0, 0.0))
DEFAULT_EFFICIENCY = _loss_model_map()


@dataclass(frozen=True)
class ModuleRatings:
    """Ratings of one module type. Defaults: Watt&Well BMPU-R2-500-32."""

    name: str = "BMPU-R2-500-32"
    charge_voltage_min_v: float = 150.0
    charge_voltage_max_v: float = 500.0
    discharge_voltage_min_v: float = 250.0
    discharge_voltage_max_v: float = 500.0
    charge_current_max_a: float = 30.0
    discharge_current_min_a: float = -32.0
    charge_power_max_w: float = 10_500.0
    discharge_power_min_w: float = -11_000.0
    #: optional I(V) shape for charging (A >= 0 over V), on top of the current/power ratings
    charge_current_curve: Curve | None = None
    #: optional I(V) shape for discharging (A <= 0 over V)
    discharge_current_curve: Curve | None = None
    #: factor in [0, 1] over module temperature (degC); ``None``: no derating
    thermal_derating: Curve | None = DEFAULT_THERMAL_DERATING
    ac_current_per_phase_a: float = 16.0
    ac_phases: int = 3
    ac_voltage_nominal_v: float = 230.0
    ac_voltage_min_v: float = 85.0
    ac_voltage_max_v: float = 305.0
    power_factor_min: float = 0.4
    efficiency: EfficiencyMap | None = field(default=DEFAULT_EFFICIENCY)
    #: used when ``efficiency`` is None
    efficiency_nominal: float = 0.95
    ramp_rate_w_per_s: float = 30_000.0

    def __post_init__(self) -> None:
        if not 0.0 < self.charge_voltage_min_v <= self.charge_voltage_max_v:
            raise ValueError(f"{self.name}: bad charge voltage window")
        if not 0.0 < self.discharge_voltage_min_v <= self.discharge_voltage_max_v:
            raise ValueError(f"{self.name}: bad discharge voltage window")
        if self.charge_current_max_a < 0 or self.charge_power_max_w < 0:
            raise ValueError(f"{self.name}: charge ratings must be >= 0")
        if self.discharge_current_min_a > 0 or self.discharge_power_min_w > 0:
            raise ValueError(f"{self.name}: discharge ratings must be <= 0 (reverse is negative)")
        if self.charge_current_curve and min(self.charge_current_curve.y) < 0:
            raise ValueError(f"{self.name}: charge current curve must be >= 0")
        if self.discharge_current_curve and max(self.discharge_current_curve.y) > 0:
            raise ValueError(f"{self.name}: discharge current curve must be <= 0")
        if self.thermal_derating and not all(0 <= f <= 1 for f in self.thermal_derating.y):
            raise ValueError(f"{self.name}: thermal derating factors must lie in [0, 1]")
        if self.ac_phases < 1 or self.ac_current_per_phase_a < 0:
            raise ValueError(f"{self.name}: bad AC ratings")
        if not 0.0 < self.ac_voltage_min_v <= self.ac_voltage_nominal_v <= self.ac_voltage_max_v:
            raise ValueError(f"{self.name}: bad AC voltage range")
        if not 0.0 < self.efficiency_nominal <= 1.0:
            raise ValueError(f"{self.name}: efficiency_nominal must lie in (0, 1]")
        if not 0.0 <= self.power_factor_min <= 1.0 or self.ramp_rate_w_per_s <= 0:
            raise ValueError(f"{self.name}: bad power factor or ramp rate")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModuleRatings:
        """Build from a config table (lists for curves, ``[[x...], [y...]]``)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown rating keys: {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("charge_current_curve", "discharge_current_curve", "thermal_derating"):
                kwargs[key] = None if value is None else _curve_from(value)
            elif key == "efficiency":
                kwargs[key] = None if value is None else _eff_from(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _curve_from(value: Any) -> Curve:
    if isinstance(value, Curve):
        return value
    if isinstance(value, Mapping):
        return Curve(tuple(value["x"]), tuple(value["y"]))
    xs, ys = value
    return Curve(tuple(xs), tuple(ys))


def _eff_from(value: Any) -> EfficiencyMap:
    if isinstance(value, EfficiencyMap):
        return value
    return EfficiencyMap(
        tuple(value["voltage_v"]),
        tuple(value["power_w"]),
        tuple(tuple(r) for r in value["efficiency"]),
    )


BMPU_R2_500_32 = ModuleRatings()


def pack_ratings(types: Sequence[ModuleRatings]) -> tuple[np.ndarray, np.ndarray]:
    """Pack module types into ``(rtab[n_types, width] float64, rlay[L_SIZE] int64)``."""
    if not types:
        raise ValueError("at least one module type")

    def npts(c: Curve | None) -> int:
        return 0 if c is None else len(c.x)

    kc = max(max(npts(t.charge_current_curve), npts(t.discharge_current_curve)) for t in types)
    kt = max(npts(t.thermal_derating) for t in types)
    kv = max(0 if t.efficiency is None else len(t.efficiency.voltage_v) for t in types)
    kp = max(0 if t.efficiency is None else len(t.efficiency.power_w) for t in types)
    lay = np.zeros(L.L_SIZE, dtype=np.int64)
    off = L.R_NSCALAR
    for slot, size in (
        (L.L_CHG_CURVE_V, kc),
        (L.L_CHG_CURVE_I, kc),
        (L.L_DIS_CURVE_V, kc),
        (L.L_DIS_CURVE_I, kc),
        (L.L_THERM_T, kt),
        (L.L_THERM_F, kt),
        (L.L_EFF_V, kv),
        (L.L_EFF_P, kp),
        (L.L_EFF_GRID, kv * kp),
    ):
        lay[slot] = off
        off += size
    lay[L.L_EFF_KP] = kp
    tab = np.zeros((len(types), off), dtype=np.float64)
    for i, t in enumerate(types):
        row = tab[i]
        row[L.R_CHG_V_MIN] = t.charge_voltage_min_v
        row[L.R_CHG_V_MAX] = t.charge_voltage_max_v
        row[L.R_DIS_V_MIN] = t.discharge_voltage_min_v
        row[L.R_DIS_V_MAX] = t.discharge_voltage_max_v
        row[L.R_CHG_I] = t.charge_current_max_a
        row[L.R_DIS_I] = -t.discharge_current_min_a
        row[L.R_CHG_P] = t.charge_power_max_w
        row[L.R_DIS_P] = -t.discharge_power_min_w
        row[L.R_AC_I_PHASE] = t.ac_current_per_phase_a
        row[L.R_AC_PHASES] = t.ac_phases
        row[L.R_AC_V_NOM] = t.ac_voltage_nominal_v
        row[L.R_AC_V_MIN] = t.ac_voltage_min_v
        row[L.R_AC_V_MAX] = t.ac_voltage_max_v
        row[L.R_EFF_CONST] = t.efficiency_nominal
        row[L.R_RAMP_W_PER_S] = t.ramp_rate_w_per_s
        row[L.R_PF_MIN] = t.power_factor_min
        for n_col, xs_slot, ys_slot, curve, sign in (
            (L.R_N_CHG_CURVE, L.L_CHG_CURVE_V, L.L_CHG_CURVE_I, t.charge_current_curve, 1.0),
            (L.R_N_DIS_CURVE, L.L_DIS_CURVE_V, L.L_DIS_CURVE_I, t.discharge_current_curve, -1.0),
            (L.R_N_THERM, L.L_THERM_T, L.L_THERM_F, t.thermal_derating, 1.0),
        ):
            n = npts(curve)
            row[n_col] = n
            if curve is not None:
                row[lay[xs_slot] : lay[xs_slot] + n] = curve.x
                row[lay[ys_slot] : lay[ys_slot] + n] = [sign * y for y in curve.y]
        if t.efficiency is not None:
            e = t.efficiency
            nv, np_ = len(e.voltage_v), len(e.power_w)
            row[L.R_N_EFF_V] = nv
            row[L.R_N_EFF_P] = np_
            row[lay[L.L_EFF_V] : lay[L.L_EFF_V] + nv] = e.voltage_v
            row[lay[L.L_EFF_P] : lay[L.L_EFF_P] + np_] = e.power_w
            for iv in range(nv):
                base = lay[L.L_EFF_GRID] + iv * kp
                row[base : base + np_] = e.efficiency[iv]
    return tab, lay


def ratings_from_config(rc: Any, name: str = "configured module") -> ModuleRatings:
    """The limits engine's ratings from the station config's ``[module_ratings]`` table."""
    return ModuleRatings(
        name=name,
        charge_voltage_min_v=rc.min_charge_voltage_v,
        charge_voltage_max_v=rc.max_voltage_v,
        discharge_voltage_min_v=rc.min_discharge_voltage_v,
        discharge_voltage_max_v=rc.max_voltage_v,
        charge_current_max_a=rc.max_charge_current_a,
        discharge_current_min_a=-rc.max_discharge_current_a,
        charge_power_max_w=rc.max_charge_power_w,
        discharge_power_min_w=-rc.max_discharge_power_w,
        thermal_derating=Curve((rc.derating_start_c, rc.derating_end_c), (1.0, 0.0)),
        ac_current_per_phase_a=rc.max_phase_current_a,
        ac_phases=rc.phases,
        ac_voltage_nominal_v=rc.grid_voltage_ln_v,
        power_factor_min=rc.min_power_factor,
        ramp_rate_w_per_s=rc.max_ramp_w_per_s,
    )
