"""Ready-made input arrays (default station) for warm-up, tests and benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bptd.limits import layout as L
from bptd.limits.ratings import BMPU_R2_500_32, ModuleRatings, pack_ratings


@dataclass
class StationArrays:
    """All arrays one ``station_limits`` call takes, in the engine's dtypes."""

    tab: np.ndarray
    lay: np.ndarray
    mod_type: np.ndarray
    mod_conn: np.ndarray
    mod_in: np.ndarray
    conn_in: np.ndarray
    conn_out: np.ndarray
    conn_code: np.ndarray
    mod_out: np.ndarray
    mod_code: np.ndarray


def default_conn_row() -> np.ndarray:
    """One connector input row with every limit open (``+/-inf``) and voltage 0."""
    row = np.zeros(L.C_NIN)
    inf = math.inf
    for col in (
        L.C_USER_CHG_I, L.C_USER_CHG_P, L.C_USER_AC_I, L.C_EV_CHG_I, L.C_EV_CHG_P,
        L.C_EV_CHG_V_MAX, L.C_HARD_CHG_I, L.C_HARD_CHG_P, L.C_HARD_V_MAX, L.C_USER_AC_DIS_I,
    ):  # fmt: skip
        row[col] = inf
    for col in (
        L.C_USER_DIS_I, L.C_USER_DIS_P, L.C_EV_DIS_I, L.C_EV_DIS_P, L.C_EV_DIS_V_MIN,
        L.C_HARD_DIS_I, L.C_HARD_DIS_P,
    ):  # fmt: skip
        row[col] = -inf
    return row


def default_mod_row() -> np.ndarray:
    row = np.zeros(L.M_NIN)
    row[L.M_TEMP_C] = 25.0
    row[L.M_ONLINE] = 1.0
    row[L.M_GRID_V] = math.nan  # nominal
    row[L.M_Q_VAR] = 0.0
    return row


def sample_station(
    n_modules: int = 2,
    n_connectors: int = 1,
    types: Sequence[ModuleRatings] = (BMPU_R2_500_32,),
    voltage_v: float = 400.0,
    series: bool = False,
) -> StationArrays:
    """Modules spread round-robin over the connectors, every limit open."""
    tab, lay = pack_ratings(types)
    mod_type = np.zeros(n_modules, dtype=np.int64)
    mod_conn = np.arange(n_modules, dtype=np.int64) % max(n_connectors, 1)
    mod_in = np.tile(default_mod_row(), (n_modules, 1))
    conn_in = np.tile(default_conn_row(), (n_connectors, 1))
    conn_in[:, L.C_VOLTAGE] = voltage_v
    conn_in[:, L.C_SERIES] = 1.0 if series else 0.0
    return StationArrays(
        tab=tab,
        lay=lay,
        mod_type=mod_type,
        mod_conn=mod_conn,
        mod_in=mod_in,
        conn_in=conn_in,
        conn_out=np.zeros((n_connectors, L.O_N)),
        conn_code=np.zeros((n_connectors, 2), dtype=np.int64),
        mod_out=np.zeros((n_modules, L.O_N)),
        mod_code=np.zeros((n_modules, 2), dtype=np.int64),
    )
