"""Envelope maps: the station's capability over grids of operating points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from bptd.limits import layout as L
from bptd.limits.engine import LimitsEngine


@dataclass(frozen=True)
class VPMap:
    """Envelope of one connector over (voltage, power) points, flat arrays of one shape."""

    voltage_v: np.ndarray
    power_w: np.ndarray
    charge_power_w: np.ndarray
    discharge_power_w: np.ndarray
    charge_current_a: np.ndarray
    discharge_current_a: np.ndarray
    feasible: np.ndarray  # bool: discharge_power_w <= power_w <= charge_power_w
    binding_charge: np.ndarray  # codes, see BINDING_NAMES
    binding_discharge: np.ndarray


@dataclass(frozen=True)
class PQMap:
    """AC-side P-Q capability of one connector at a DC voltage."""

    voltage_v: float
    p_ac_w: np.ndarray
    q_var: np.ndarray
    p_dc_w: np.ndarray
    feasible: np.ndarray  # bool
    p_ac_max_w: np.ndarray  # reachable AC power in the point's direction at its Q
    binding: np.ndarray  # code that bounds the point's direction (or power_factor)


def envelope_vp(
    engine: LimitsEngine, connector: int, voltage_v: ArrayLike, power_w: ArrayLike
) -> VPMap:
    """Evaluate the connector's envelope at each (voltage, power) point (same shape)."""
    volts = np.ascontiguousarray(voltage_v, dtype=np.float64).ravel()
    powers = np.ascontiguousarray(power_w, dtype=np.float64).ravel()
    if volts.shape != powers.shape:
        raise ValueError("voltage_v and power_w must have the same number of points")
    out = np.zeros((volts.size, L.E_N))
    codes = np.zeros((volts.size, 2), dtype=np.int64)
    engine.kernels.envelope_vp(*engine.kernel_args(), int(connector), volts, powers, out, codes)
    return VPMap(
        voltage_v=volts,
        power_w=powers,
        charge_power_w=out[:, L.E_CHG_P],
        discharge_power_w=out[:, L.E_DIS_P],
        charge_current_a=out[:, L.E_CHG_I],
        discharge_current_a=out[:, L.E_DIS_I],
        feasible=out[:, L.E_FEASIBLE] > 0.5,
        binding_charge=codes[:, 0],
        binding_discharge=codes[:, 1],
    )


def vp_grid(
    engine: LimitsEngine, connector: int, voltages_v: ArrayLike, powers_w: ArrayLike
) -> VPMap:
    """Envelope over the full grid ``voltages_v x powers_w`` (flattened, voltage-major)."""
    vv, pp = np.meshgrid(np.asarray(voltages_v, float), np.asarray(powers_w, float), indexing="ij")
    return envelope_vp(engine, connector, vv, pp)


def envelope_pq(
    engine: LimitsEngine, connector: int, voltage_v: float, p_ac_w: ArrayLike, q_var: ArrayLike
) -> PQMap:
    """AC P-Q capability at DC ``voltage_v``: each (P, Q) point checked against the AC
    rating (S^2 = P^2 + Q^2), the power factor floor and the DC envelope."""
    p = np.ascontiguousarray(p_ac_w, dtype=np.float64).ravel()
    q = np.ascontiguousarray(q_var, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError("p_ac_w and q_var must have the same number of points")
    out = np.zeros((p.size, L.PQ_N))
    codes = np.zeros(p.size, dtype=np.int64)
    engine.kernels.envelope_pq(
        *engine.kernel_args(), int(connector), float(voltage_v), p, q, out, codes
    )
    return PQMap(
        voltage_v=float(voltage_v),
        p_ac_w=p,
        q_var=q,
        p_dc_w=out[:, L.PQ_P_DC],
        feasible=out[:, L.PQ_FEASIBLE] > 0.5,
        p_ac_max_w=out[:, L.PQ_P_AC_MAX],
        binding=codes,
    )
