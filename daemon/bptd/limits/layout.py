"""Array layout shared by the numba kernels, the reference and the facade.

Every per-tick quantity lives in a column of a small 2-D ``float64`` array so that one kernel
call takes a handful of arrays instead of dozens of arguments. The names below are column
indices. Binding-constraint codes are small integers; :data:`BINDING_NAMES` maps them to the
names shown by ``status``.

Note: the numba kernels freeze these constants when they compile. After changing this file,
touch ``kernels.py`` (or clear ``NUMBA_CACHE_DIR``) so the on-disk cache is rebuilt.
"""

from __future__ import annotations

# --- binding constraints (closed set) --------------------------------------------------
MODULE_SOA = 0
VOLTAGE_WINDOW = 1
THERMAL_DERATING = 2
AC_LIMIT = 3
USER_AC_CURRENT = 4
HARD_LIMIT = 5
EV_VOLTAGE = 6
EV_CURRENT = 7
EV_POWER = 8
USER_CURRENT = 9
USER_POWER = 10
NO_MODULES = 11
MODULE_OFFLINE = 12
NOT_ALLOCATED = 13
POWER_FACTOR = 14

BINDING_NAMES: tuple[str, ...] = (
    "module_soa",
    "voltage_window",
    "thermal_derating",
    "ac_limit",
    "user_ac_current",
    "hard_limit",
    "ev_voltage",
    "ev_current",
    "ev_power",
    "user_current",
    "user_power",
    "no_modules",
    "module_offline",
    "not_allocated",
    "power_factor",
)

# --- module type table: scalar columns of ``rtab[type, :]`` ---------------------------
# Discharge quantities are stored as magnitudes (>= 0); the signs live in the API.
R_CHG_V_MIN = 0
R_CHG_V_MAX = 1
R_DIS_V_MIN = 2
R_DIS_V_MAX = 3
R_CHG_I = 4
R_DIS_I = 5
R_CHG_P = 6
R_DIS_P = 7
R_AC_I_PHASE = 8
R_AC_PHASES = 9
R_AC_V_NOM = 10
R_AC_V_MIN = 11
R_AC_V_MAX = 12
R_EFF_CONST = 13
R_N_CHG_CURVE = 14
R_N_DIS_CURVE = 15
R_N_THERM = 16
R_N_EFF_V = 17
R_N_EFF_P = 18
R_RAMP_W_PER_S = 19
R_PF_MIN = 20
R_NSCALAR = 21

# --- offsets of the curve blocks in a ``rtab`` row, stored in the int64 ``rlay`` -------
L_CHG_CURVE_V = 0
L_CHG_CURVE_I = 1
L_DIS_CURVE_V = 2
L_DIS_CURVE_I = 3
L_THERM_T = 4
L_THERM_F = 5
L_EFF_V = 6
L_EFF_P = 7
L_EFF_GRID = 8
L_EFF_KP = 9  # row stride of the efficiency grid
L_SIZE = 10

# --- per-module inputs ``mod_in[module, :]`` -------------------------------------------
M_TEMP_C = 0
M_ONLINE = 1
M_GRID_V = 2  # AC phase-neutral voltage seen by the module's front end (NaN: nominal)
M_Q_VAR = 3  # reactive power the module's front end carries (sign irrelevant)
M_NIN = 4

# --- per-connector inputs ``conn_in[connector, :]`` (signed: discharge limits <= 0) -----
C_VOLTAGE = 0
C_SERIES = 1  # 1.0: the allocated modules are in series, 0.0: in parallel
C_USER_CHG_I = 2
C_USER_DIS_I = 3
C_USER_CHG_P = 4
C_USER_DIS_P = 5
C_USER_AC_I = 6  # per-phase AC current for the whole connector while charging
C_EV_CHG_I = 7
C_EV_DIS_I = 8
C_EV_CHG_P = 9
C_EV_DIS_P = 10
C_EV_CHG_V_MAX = 11  # charging stops at or above this voltage
C_EV_DIS_V_MIN = 12  # discharging stops at or below this voltage
C_HARD_CHG_I = 13
C_HARD_DIS_I = 14
C_HARD_CHG_P = 15
C_HARD_DIS_P = 16
C_HARD_V_MAX = 17
C_USER_AC_DIS_I = 18  # per-phase AC current while discharging (magnitude)
C_NIN = 19

# --- per-connector outputs ``conn_out[connector, :]`` and module outputs ---------------
O_CHG_I = 0
O_DIS_I = 1
O_CHG_P = 2
O_DIS_P = 3
O_N = 4

# --- envelope map outputs -------------------------------------------------------------
E_CHG_P = 0
E_DIS_P = 1
E_CHG_I = 2
E_DIS_I = 3
E_FEASIBLE = 4
E_N = 5

PQ_P_DC = 0
PQ_FEASIBLE = 1
PQ_P_AC_MAX = 2
PQ_N = 3
