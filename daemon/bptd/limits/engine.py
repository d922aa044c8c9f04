"""The facade the control loop calls: :class:`LimitsEngine`.

All state is numpy arrays allocated once; ``compute`` and ``share`` write into them and
return views, so a 100 Hz tick makes no Python objects beyond the call itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from bptd.limits import backend as _backend
from bptd.limits import layout as L
from bptd.limits.ratings import BMPU_R2_500_32, ModuleRatings, pack_ratings
from bptd.limits.samples import default_conn_row, default_mod_row

Topology = Literal["parallel", "series"]
_INF = math.inf


@dataclass(frozen=True)
class HardLimits:
    """Configured hard limits of a connector (cable, inlet, contactors). Signed."""

    charge_current_a: float = _INF
    discharge_current_a: float = -_INF
    charge_power_w: float = _INF
    discharge_power_w: float = -_INF
    voltage_max_v: float = _INF


class _Columns:
    """Named, writable views on the columns of a 2-D input array."""

    _cols: dict[str, int] = {}

    def __init__(self, array: np.ndarray) -> None:
        object.__setattr__(self, "_array", array)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self._array[:, self._cols[name]]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: ArrayLike) -> None:
        if name not in self._cols:
            raise AttributeError(f"no input column {name!r}")
        self._array[:, self._cols[name]] = value


class ModuleInputs(_Columns):
    """Per-module inputs: ``temp_c``, ``online`` (1/0), ``grid_voltage_v`` (phase-neutral,
    NaN = nominal), ``reactive_power_var``."""

    _cols = {
        "temp_c": L.M_TEMP_C,
        "online": L.M_ONLINE,
        "grid_voltage_v": L.M_GRID_V,
        "reactive_power_var": L.M_Q_VAR,
    }


class ConnectorInputs(_Columns):
    """Per-connector inputs, signed (discharge limits <= 0; ``inf`` / ``-inf`` = none)."""

    _cols = {
        "voltage_v": L.C_VOLTAGE,
        "user_charge_current_a": L.C_USER_CHG_I,
        "user_discharge_current_a": L.C_USER_DIS_I,
        "user_charge_power_w": L.C_USER_CHG_P,
        "user_discharge_power_w": L.C_USER_DIS_P,
        "user_ac_current_a": L.C_USER_AC_I,
        "user_ac_discharge_current_a": L.C_USER_AC_DIS_I,
        "ev_charge_current_a": L.C_EV_CHG_I,
        "ev_discharge_current_a": L.C_EV_DIS_I,
        "ev_charge_power_w": L.C_EV_CHG_P,
        "ev_discharge_power_w": L.C_EV_DIS_P,
        "ev_charge_voltage_max_v": L.C_EV_CHG_V_MAX,
        "ev_discharge_voltage_min_v": L.C_EV_DIS_V_MIN,
        "hard_charge_current_a": L.C_HARD_CHG_I,
        "hard_discharge_current_a": L.C_HARD_DIS_I,
        "hard_charge_power_w": L.C_HARD_CHG_P,
        "hard_discharge_power_w": L.C_HARD_DIS_P,
        "hard_voltage_max_v": L.C_HARD_V_MAX,
    }


@dataclass(frozen=True)
class Limits:
    """Views on the engine's output arrays; overwritten by every ``compute``.

    Connector arrays have one element per connector, module arrays one per module.
    Discharge values are <= 0. ``binding_*`` hold codes; see :data:`BINDING_NAMES`.
    """

    charge_current_a: np.ndarray
    discharge_current_a: np.ndarray
    charge_power_w: np.ndarray
    discharge_power_w: np.ndarray
    binding_charge: np.ndarray
    binding_discharge: np.ndarray
    module_charge_current_a: np.ndarray
    module_discharge_current_a: np.ndarray
    module_charge_power_w: np.ndarray
    module_discharge_power_w: np.ndarray
    module_binding_charge: np.ndarray
    module_binding_discharge: np.ndarray


class LimitsEngine:
    """Limits of a station: ``n_modules`` modules of the given types, ``n_connectors``.

    ``module_types`` lists the distinct ratings; ``module_type_index[m]`` picks module
    ``m``'s (default: all the first type). ``backend``: ``"auto"``, ``"numba"`` or
    ``"reference"``. ``share_mode``: ``"equal"`` (water-filling) or ``"proportional"``.
    ``dispatch=True`` enables efficiency-aware dispatch of parallel modules.
    """

    def __init__(
        self,
        n_modules: int = 2,
        n_connectors: int = 1,
        module_types: Sequence[ModuleRatings] = (BMPU_R2_500_32,),
        module_type_index: Sequence[int] | None = None,
        *,
        backend: str = "auto",
        share_mode: Literal["equal", "proportional"] = "equal",
        dispatch: bool = False,
        dispatch_hysteresis_w: float = 25.0,
    ) -> None:
        if n_modules < 0 or n_connectors < 0:
            raise ValueError("counts must be >= 0")
        self.module_types = tuple(module_types)
        self._tab, self._lay = pack_ratings(self.module_types)
        idx = [0] * n_modules if module_type_index is None else list(module_type_index)
        if len(idx) != n_modules or not all(0 <= i < len(self.module_types) for i in idx):
            raise ValueError("module_type_index must name a type for every module")
        if share_mode not in ("equal", "proportional"):
            raise ValueError(f"unknown share_mode {share_mode!r}")
        self._k = _backend.select(backend)
        self.backend = "reference" if self._k.__name__.endswith("reference") else "numba"
        self.n_modules = n_modules
        self.n_connectors = n_connectors
        self._mod_type = np.asarray(idx, dtype=np.int64)
        self._mod_conn = np.full(n_modules, -1, dtype=np.int64)
        self._mod_in = np.tile(default_mod_row(), (n_modules, 1))
        self._conn_in = np.tile(default_conn_row(), (n_connectors, 1))
        self._conn_out = np.zeros((n_connectors, L.O_N))
        self._conn_code = np.zeros((n_connectors, 2), dtype=np.int64)
        self._mod_out = np.zeros((n_modules, L.O_N))
        self._mod_code = np.full((n_modules, 2), L.NOT_ALLOCATED, dtype=np.int64)
        self._setpoint = np.zeros(n_connectors)
        self._share_conn = np.zeros(n_connectors)
        self._share_mod = np.zeros(n_modules)
        self._active = np.ones(n_modules)
        self._active_count = np.zeros(n_connectors, dtype=np.int64)
        self._share_mode = 0 if share_mode == "equal" else 1
        self._mod_div = np.full(n_modules, np.nan)
        self._mod_idx = np.zeros(n_modules, dtype=np.int64)
        self._mod_v = np.full(n_modules, np.nan)
        self.dispatch = dispatch
        self.dispatch_hysteresis_w = float(dispatch_hysteresis_w)
        self.modules = ModuleInputs(self._mod_in)
        self.connectors = ConnectorInputs(self._conn_in)
        self.module_ramp_rate_w_per_s = self._tab[self._mod_type, L.R_RAMP_W_PER_S].copy()
        self.limits = Limits(
            charge_current_a=self._conn_out[:, L.O_CHG_I],
            discharge_current_a=self._conn_out[:, L.O_DIS_I],
            charge_power_w=self._conn_out[:, L.O_CHG_P],
            discharge_power_w=self._conn_out[:, L.O_DIS_P],
            binding_charge=self._conn_code[:, 0],
            binding_discharge=self._conn_code[:, 1],
            module_charge_current_a=self._mod_out[:, L.O_CHG_I],
            module_discharge_current_a=self._mod_out[:, L.O_DIS_I],
            module_charge_power_w=self._mod_out[:, L.O_CHG_P],
            module_discharge_power_w=self._mod_out[:, L.O_DIS_P],
            module_binding_charge=self._mod_code[:, 0],
            module_binding_discharge=self._mod_code[:, 1],
        )

    # --- configuration (not per tick) -------------------------------------------------
    def set_allocation(
        self, connector: int, modules: Sequence[int], topology: Topology = "parallel"
    ) -> None:
        """Give ``modules`` to ``connector`` (taking them from any other connector)."""
        self._check_connector(connector)
        if topology not in ("parallel", "series"):
            raise ValueError(f"unknown topology {topology!r}")
        mods = list(modules)
        if not all(0 <= m < self.n_modules for m in mods) or len(set(mods)) != len(mods):
            raise ValueError("bad module list")
        self._mod_conn[self._mod_conn == connector] = -1
        self._mod_conn[mods] = connector
        self._conn_in[connector, L.C_SERIES] = 1.0 if topology == "series" else 0.0
        self._active_count[connector] = 0
        for c in range(self.n_connectors):
            members = self._mod_conn == c
            series = self._conn_in[c, L.C_SERIES] > 0.5
            self._mod_div[members] = float(members.sum()) if series else 1.0
        self._mod_div[self._mod_conn < 0] = np.nan
        self._mod_idx[:] = np.maximum(self._mod_conn, 0)

    def clear_allocation(self, connector: int) -> None:
        self.set_allocation(connector, [])

    def allocation(self, connector: int) -> tuple[list[int], Topology]:
        self._check_connector(connector)
        mods = [int(m) for m in np.flatnonzero(self._mod_conn == connector)]
        return mods, "series" if self._conn_in[connector, L.C_SERIES] > 0.5 else "parallel"

    def set_hard_limits(self, connector: int, hard: HardLimits) -> None:
        self._check_connector(connector)
        row = self._conn_in[connector]
        row[L.C_HARD_CHG_I] = hard.charge_current_a
        row[L.C_HARD_DIS_I] = hard.discharge_current_a
        row[L.C_HARD_CHG_P] = hard.charge_power_w
        row[L.C_HARD_DIS_P] = hard.discharge_power_w
        row[L.C_HARD_V_MAX] = hard.voltage_max_v

    # --- per session / per request --------------------------------------------------
    def set_user_limits(
        self,
        connector: int,
        *,
        charge_current_a: float = _INF,
        discharge_current_a: float = -_INF,
        charge_power_w: float = _INF,
        discharge_power_w: float = -_INF,
        ac_current_a: float = _INF,
        ac_discharge_current_a: float | None = None,
    ) -> None:
        """Frontend / user limits (signed; ``0`` forbids a direction). ``ac_current_a`` is
        the per-phase AC current while charging, and also while discharging unless
        ``ac_discharge_current_a`` (a magnitude) is given."""
        self._check_connector(connector)
        row = self._conn_in[connector]
        row[L.C_USER_CHG_I] = charge_current_a
        row[L.C_USER_DIS_I] = discharge_current_a
        row[L.C_USER_CHG_P] = charge_power_w
        row[L.C_USER_DIS_P] = discharge_power_w
        row[L.C_USER_AC_I] = ac_current_a
        row[L.C_USER_AC_DIS_I] = (
            ac_current_a if ac_discharge_current_a is None else (ac_discharge_current_a)
        )

    def set_ev_limits(
        self,
        connector: int,
        *,
        charge_current_a: float = _INF,
        discharge_current_a: float = -_INF,
        charge_power_w: float = _INF,
        discharge_power_w: float = -_INF,
        charge_voltage_max_v: float = _INF,
        discharge_voltage_min_v: float = -_INF,
    ) -> None:
        """Limits the vehicle announced (signed; reset with no arguments after a session)."""
        self._check_connector(connector)
        row = self._conn_in[connector]
        row[L.C_EV_CHG_I] = charge_current_a
        row[L.C_EV_DIS_I] = discharge_current_a
        row[L.C_EV_CHG_P] = charge_power_w
        row[L.C_EV_DIS_P] = discharge_power_w
        row[L.C_EV_CHG_V_MAX] = charge_voltage_max_v
        row[L.C_EV_DIS_V_MIN] = discharge_voltage_min_v

    # --- per tick ---------------------------------------------------------------------
    def compute(
        self,
        *,
        voltage_v: ArrayLike | None = None,
        temp_c: ArrayLike | None = None,
        online: ArrayLike | None = None,
        grid_voltage_v: ArrayLike | None = None,
        reactive_power_var: ArrayLike | None = None,
    ) -> Limits:
        """Update the given inputs (connector voltages, module arrays), compute all limits."""
        if voltage_v is not None:
            self._conn_in[:, L.C_VOLTAGE] = voltage_v
        if temp_c is not None:
            self._mod_in[:, L.M_TEMP_C] = temp_c
        if online is not None:
            self._mod_in[:, L.M_ONLINE] = online
        if grid_voltage_v is not None:
            self._mod_in[:, L.M_GRID_V] = grid_voltage_v
        if reactive_power_var is not None:
            self._mod_in[:, L.M_Q_VAR] = reactive_power_var
        self._k.station_limits(
            self._tab, self._lay, self._mod_type, self._mod_conn, self._mod_in, self._conn_in,
            self._conn_out, self._conn_code, self._mod_out, self._mod_code,
        )  # fmt: skip
        return self.limits

    def share(self, setpoint_a: ArrayLike) -> np.ndarray:
        """Per-module current setpoints (A) for the connector setpoints, within the limits of
        the last ``compute``; the clamped connector setpoints are in :attr:`shared_connector_a`.
        Returns a reused array."""
        self._setpoint[:] = setpoint_a
        if self.dispatch:
            self._k.dispatch_select(
                self._tab, self._lay, self._mod_type, self._mod_conn, self._mod_in,
                self._conn_in, self._mod_out, self._setpoint, self.dispatch_hysteresis_w,
                self._active_count, self._active,
            )  # fmt: skip
        self._k.share(
            self._mod_conn, self._mod_in, self._conn_in, self._conn_out, self._mod_out,
            self._active, self._setpoint, self._share_mode, self._share_mod, self._share_conn,
        )  # fmt: skip
        return self._share_mod

    @property
    def shared_connector_a(self) -> np.ndarray:
        """Connector setpoints after clamping to the envelope (from the last ``share``)."""
        return self._share_conn

    @property
    def active_modules(self) -> np.ndarray:
        """1.0 for modules that efficiency-aware dispatch keeps running (all when off)."""
        return self._active

    def module_voltage_v(self) -> np.ndarray:
        """DC voltage each module sees (series: the connector voltage split), NaN if idle.
        Returns a reused array."""
        if self.n_connectors:
            np.take(self._conn_in[:, L.C_VOLTAGE], self._mod_idx, out=self._mod_v)
            self._mod_v /= self._mod_div
        return self._mod_v

    def connector_ramp_rate_w_per_s(self) -> np.ndarray:
        """Default connector ramp rate: the sum of its modules' rates."""
        out = np.zeros(self.n_connectors)
        used = self._mod_conn >= 0
        np.add.at(out, self._mod_conn[used], self.module_ramp_rate_w_per_s[used])
        return out

    # --- reporting (allocates; not for the hot path) --------------------------------
    def binding(self, connector: int) -> tuple[str, str]:
        """Names of the binding constraints (charge, discharge) of ``connector``."""
        self._check_connector(connector)
        return (
            L.BINDING_NAMES[int(self._conn_code[connector, 0])],
            L.BINDING_NAMES[int(self._conn_code[connector, 1])],
        )

    def status(self) -> dict[str, object]:
        """Plain-data snapshot of the last ``compute`` for ``status`` / telemetry."""
        conns = []
        for c in range(self.n_connectors):
            mods, topo = self.allocation(c)
            chg, dis = self.binding(c)
            conns.append(
                {
                    "connector": c,
                    "modules": mods,
                    "topology": topo,
                    "voltage_v": float(self._conn_in[c, L.C_VOLTAGE]),
                    "charge_current_a": float(self._conn_out[c, L.O_CHG_I]),
                    "discharge_current_a": float(self._conn_out[c, L.O_DIS_I]),
                    "charge_power_w": float(self._conn_out[c, L.O_CHG_P]),
                    "discharge_power_w": float(self._conn_out[c, L.O_DIS_P]),
                    "binding_charge": chg,
                    "binding_discharge": dis,
                }
            )
        mods_out = [
            {
                "module": m,
                "connector": int(self._mod_conn[m]),
                "type": self.module_types[int(self._mod_type[m])].name,
                "charge_current_a": float(self._mod_out[m, L.O_CHG_I]),
                "discharge_current_a": float(self._mod_out[m, L.O_DIS_I]),
                "binding_charge": L.BINDING_NAMES[int(self._mod_code[m, 0])],
                "binding_discharge": L.BINDING_NAMES[int(self._mod_code[m, 1])],
            }
            for m in range(self.n_modules)
        ]
        return {"backend": self.backend, "connectors": conns, "modules": mods_out}

    # --- arrays for the envelope maps and benchmarks -------------------------------
    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """``(rtab, rlay, mod_type, mod_conn, mod_in, conn_in)`` as the kernels take them."""
        return (self._tab, self._lay, self._mod_type, self._mod_conn, self._mod_in, self._conn_in)

    @property
    def kernels(self):  # type: ignore[no-untyped-def]
        """The kernel module in use (numba or reference)."""
        return self._k

    def _check_connector(self, connector: int) -> None:
        if not 0 <= connector < self.n_connectors:
            raise IndexError(f"no connector {connector}")
