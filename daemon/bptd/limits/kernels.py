"""numba kernels of the limits engine (``njit``, ``cache=True``).

Each public kernel has a twin of the same name and signature in :mod:`bptd.limits.reference`;
the tests hold them to 1e-9. Kernels are pure: arrays and numbers in, results written into
caller-provided output arrays, nothing else touched. See ``layout.py`` for the columns.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bptd.limits.layout import (
    AC_LIMIT,
    C_EV_CHG_I,
    C_EV_CHG_P,
    C_EV_CHG_V_MAX,
    C_EV_DIS_V_MIN,
    C_HARD_CHG_I,
    C_HARD_CHG_P,
    C_HARD_V_MAX,
    C_SERIES,
    C_USER_AC_DIS_I,
    C_USER_AC_I,
    C_USER_CHG_I,
    C_USER_CHG_P,
    C_VOLTAGE,
    E_CHG_I,
    E_CHG_P,
    E_DIS_I,
    E_DIS_P,
    E_FEASIBLE,
    EV_CURRENT,
    EV_POWER,
    EV_VOLTAGE,
    HARD_LIMIT,
    L_CHG_CURVE_I,
    L_CHG_CURVE_V,
    L_DIS_CURVE_I,
    L_DIS_CURVE_V,
    L_EFF_GRID,
    L_EFF_KP,
    L_EFF_P,
    L_EFF_V,
    L_THERM_F,
    L_THERM_T,
    M_GRID_V,
    M_ONLINE,
    M_Q_VAR,
    M_TEMP_C,
    MODULE_OFFLINE,
    MODULE_SOA,
    NO_MODULES,
    NOT_ALLOCATED,
    O_CHG_I,
    O_CHG_P,
    O_DIS_I,
    O_DIS_P,
    POWER_FACTOR,
    PQ_FEASIBLE,
    PQ_P_AC_MAX,
    PQ_P_DC,
    R_AC_I_PHASE,
    R_AC_PHASES,
    R_AC_V_MAX,
    R_AC_V_MIN,
    R_AC_V_NOM,
    R_CHG_I,
    R_CHG_P,
    R_CHG_V_MAX,
    R_CHG_V_MIN,
    R_DIS_I,
    R_DIS_P,
    R_DIS_V_MAX,
    R_DIS_V_MIN,
    R_EFF_CONST,
    R_N_CHG_CURVE,
    R_N_DIS_CURVE,
    R_N_EFF_P,
    R_N_EFF_V,
    R_N_THERM,
    R_PF_MIN,
    THERMAL_DERATING,
    USER_AC_CURRENT,
    USER_CURRENT,
    USER_POWER,
    VOLTAGE_WINDOW,
)

_INF = math.inf


@njit(cache=True, error_model="numpy")
def _pwl(row, off_x, off_y, n, x):  # pragma: no cover - compiled
    """Piecewise-linear interpolation, constant outside; NaN x gives the last point."""
    if x <= row[off_x]:
        return row[off_y]
    for k in range(1, n):
        x1 = row[off_x + k]
        if x <= x1:
            x0 = row[off_x + k - 1]
            y0 = row[off_y + k - 1]
            return y0 + (row[off_y + k] - y0) * (x - x0) / (x1 - x0)
    return row[off_y + n - 1]


@njit(cache=True, error_model="numpy")
def _seg(row, off, n, x):  # pragma: no cover - compiled
    if n == 1 or x <= row[off]:
        return 0, 0.0
    if x >= row[off + n - 1]:
        return n - 2, 1.0
    for k in range(1, n):
        x1 = row[off + k]
        if x <= x1:
            x0 = row[off + k - 1]
            return k - 1, (x - x0) / (x1 - x0)
    return n - 2, 1.0


@njit(cache=True, error_model="numpy")
def _eff(row, lay, v, p):  # pragma: no cover - compiled
    nv = int(row[R_N_EFF_V])
    npp = int(row[R_N_EFF_P])
    if nv == 0 or npp == 0:
        e = row[R_EFF_CONST]
    else:
        iv, fv = _seg(row, lay[L_EFF_V], nv, v)
        ip, fp = _seg(row, lay[L_EFF_P], npp, p)
        iv1 = iv + 1 if nv > 1 else iv
        ip1 = ip + 1 if npp > 1 else ip
        kp = lay[L_EFF_KP]
        g = lay[L_EFF_GRID]
        e00 = row[g + iv * kp + ip]
        e01 = row[g + iv * kp + ip1]
        e10 = row[g + iv1 * kp + ip]
        e11 = row[g + iv1 * kp + ip1]
        a = e00 + (e01 - e00) * fp
        b = e10 + (e11 - e10) * fp
        e = a + (b - a) * fv
    if e < 0.01:
        e = 0.01
    if e > 1.0:
        e = 1.0
    return e


@njit(cache=True, error_model="numpy")
def _module_dir(row, lay, d, v, temp, v_ln, q):  # pragma: no cover - compiled
    """Allowed current magnitude of one module in direction ``d`` (0 charge, 1 discharge)."""
    if d == 0:
        vmin = row[R_CHG_V_MIN]
        vmax = row[R_CHG_V_MAX]
        imax = row[R_CHG_I]
        pmax = row[R_CHG_P]
        n = int(row[R_N_CHG_CURVE])
        ox = lay[L_CHG_CURVE_V]
        oy = lay[L_CHG_CURVE_I]
    else:
        vmin = row[R_DIS_V_MIN]
        vmax = row[R_DIS_V_MAX]
        imax = row[R_DIS_I]
        pmax = row[R_DIS_P]
        n = int(row[R_N_DIS_CURVE])
        ox = lay[L_DIS_CURVE_V]
        oy = lay[L_DIS_CURVE_I]
    if not (v >= vmin and v <= vmax):
        return 0.0, VOLTAGE_WINDOW
    cap = imax
    pc = pmax / v
    if pc < cap:
        cap = pc
    if n > 0:
        cc = _pwl(row, ox, oy, n, v)
        if cc < cap:
            cap = cc
    code = MODULE_SOA
    nt = int(row[R_N_THERM])
    if nt > 0:
        th = cap * _pwl(row, lay[L_THERM_T], lay[L_THERM_F], nt, temp)
        if th < cap:
            cap = th
            code = THERMAL_DERATING
    if v_ln != v_ln:
        v_ln = row[R_AC_V_NOM]
    s = 0.0
    if v_ln >= row[R_AC_V_MIN] and v_ln <= row[R_AC_V_MAX]:
        s = row[R_AC_I_PHASE] * v_ln * row[R_AC_PHASES]
    s2 = s * s - q * q
    p_avail = math.sqrt(s2) if s2 > 0.0 else 0.0
    p_op = cap * v
    if p_avail < p_op:
        p_op = p_avail
    e = _eff(row, lay, v, p_op if d == 0 else -p_op)
    p_dc = p_avail * e if d == 0 else p_avail / e
    ia = p_dc / v
    if ia < cap:
        cap = ia
        code = AC_LIMIT
    if cap < 0.0:
        cap = 0.0
    return cap, code


@njit(cache=True, error_model="numpy")
def _apply(cap, code, x, new_code):  # pragma: no cover - compiled
    if not (x >= 0.0):
        x = 0.0
    if x < cap:
        return x, new_code
    return cap, code


@njit(cache=True, error_model="numpy")
def _connector_dir(
    c,
    d,
    v,
    v_mod,
    series,
    n_alloc,
    n_on,
    tab,
    lay,
    mod_type,
    mod_conn,
    mod_in,
    conn_in,
    mod_out,
    mod_code,
):  # pragma: no cover - compiled
    """Allowed current magnitude of connector ``c`` in direction ``d`` and its binding code."""
    nm = mod_conn.shape[0]
    agg = _INF if series else 0.0
    agg_code = NO_MODULES
    lowest = _INF
    for m in range(nm):
        if mod_conn[m] != c:
            continue
        if mod_in[m, M_ONLINE] > 0.5:
            mag, mcode = _module_dir(
                tab[mod_type[m]],
                lay,
                d,
                v_mod,
                mod_in[m, M_TEMP_C],
                mod_in[m, M_GRID_V],
                mod_in[m, M_Q_VAR],
            )
            if series:
                if mag < agg:
                    agg = mag
            else:
                agg += mag
            if mag < lowest:
                lowest = mag
                agg_code = mcode
        else:
            mag = 0.0
            mcode = MODULE_OFFLINE
        if d == 0:
            mod_out[m, O_CHG_I] = mag
            mod_out[m, O_CHG_P] = mag * v_mod if mag > 0.0 else 0.0
        else:
            mod_out[m, O_DIS_I] = 0.0 - mag
            mod_out[m, O_DIS_P] = 0.0 - mag * v_mod if mag > 0.0 else 0.0
        mod_code[m, d] = mcode
    if n_on == 0 or (series and n_on < n_alloc):
        return 0.0, NO_MODULES
    cap = agg
    code = agg_code
    if not (cap > 0.0):
        return 0.0, code
    # connector AC per-phase current limit, shared equally over the online modules
    iac = conn_in[c, C_USER_AC_I] if d == 0 else conn_in[c, C_USER_AC_DIS_I]
    if not (iac >= 0.0):
        iac = 0.0
    if iac < _INF:
        vln_sum = 0.0
        q_tot = 0.0
        phases = 0.0
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5:
                row = tab[mod_type[m]]
                vln = mod_in[m, M_GRID_V]
                if vln != vln:
                    vln = row[R_AC_V_NOM]
                vln_sum += vln
                q_tot += mod_in[m, M_Q_VAR]
                if phases == 0.0:
                    phases = row[R_AC_PHASES]
        s = iac * (vln_sum / n_on) * phases
        s2 = s * s - q_tot * q_tot
        p_avail = math.sqrt(s2) if s2 > 0.0 else 0.0
        p_share = cap * v
        if p_avail < p_share:
            p_share = p_avail
        p_share = p_share / n_on
        acc = 0.0
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5:
                if d == 0:
                    acc += _eff(tab[mod_type[m]], lay, v_mod, p_share)
                else:
                    acc += 1.0 / _eff(tab[mod_type[m]], lay, v_mod, -p_share)
        cap, code = _apply(cap, code, p_avail * acc / n_on / v, USER_AC_CURRENT)
    if not (v <= conn_in[c, C_HARD_V_MAX]):
        return 0.0, HARD_LIMIT
    sgn = 1.0 if d == 0 else -1.0
    cap, code = _apply(cap, code, sgn * conn_in[c, C_HARD_CHG_I + d], HARD_LIMIT)
    cap, code = _apply(cap, code, sgn * conn_in[c, C_HARD_CHG_P + d] / v, HARD_LIMIT)
    if cap > 0.0:
        if d == 0:
            if not (v < conn_in[c, C_EV_CHG_V_MAX]):
                return 0.0, EV_VOLTAGE
        elif not (v > conn_in[c, C_EV_DIS_V_MIN]):
            return 0.0, EV_VOLTAGE
    cap, code = _apply(cap, code, sgn * conn_in[c, C_EV_CHG_I + d], EV_CURRENT)
    cap, code = _apply(cap, code, sgn * conn_in[c, C_EV_CHG_P + d] / v, EV_POWER)
    cap, code = _apply(cap, code, sgn * conn_in[c, C_USER_CHG_I + d], USER_CURRENT)
    cap, code = _apply(cap, code, sgn * conn_in[c, C_USER_CHG_P + d] / v, USER_POWER)
    return cap, code


@njit(cache=True, error_model="numpy")
def _connector_both(
    c,
    v,
    v_mod,
    series,
    n_alloc,
    n_on,
    tab,
    lay,
    mod_type,
    mod_conn,
    mod_in,
    conn_in,
    mod_out,
    mod_code,
):  # pragma: no cover - compiled
    """Both directions of :func:`_connector_dir`: (charge cap, code, discharge cap, code)."""
    cap0, code0 = _connector_dir(
        c,
        0,
        v,
        v_mod,
        series,
        n_alloc,
        n_on,
        tab,
        lay,
        mod_type,
        mod_conn,
        mod_in,
        conn_in,
        mod_out,
        mod_code,
    )
    cap1, code1 = _connector_dir(
        c,
        1,
        v,
        v_mod,
        series,
        n_alloc,
        n_on,
        tab,
        lay,
        mod_type,
        mod_conn,
        mod_in,
        conn_in,
        mod_out,
        mod_code,
    )
    return cap0, code0, cap1, code1


@njit(cache=True, error_model="numpy")
def _count(c, mod_conn, mod_in):  # pragma: no cover - compiled
    n_alloc = 0
    n_on = 0
    for m in range(mod_conn.shape[0]):
        if mod_conn[m] == c:
            n_alloc += 1
            if mod_in[m, M_ONLINE] > 0.5:
                n_on += 1
    return n_alloc, n_on


@njit(cache=True, error_model="numpy")
def station_limits(
    tab, lay, mod_type, mod_conn, mod_in, conn_in, conn_out, conn_code, mod_out, mod_code
):  # pragma: no cover - compiled
    """One control tick: envelope of every connector and module (see ``layout.py``)."""
    nm = mod_conn.shape[0]
    nc = conn_in.shape[0]
    for m in range(nm):
        if not (mod_conn[m] >= 0 and mod_conn[m] < nc):
            for k in range(mod_out.shape[1]):
                mod_out[m, k] = 0.0
            mod_code[m, 0] = NOT_ALLOCATED
            mod_code[m, 1] = NOT_ALLOCATED
    for c in range(nc):
        v = conn_in[c, C_VOLTAGE]
        series = conn_in[c, C_SERIES] > 0.5
        n_alloc, n_on = _count(c, mod_conn, mod_in)
        v_mod = v / n_alloc if series and n_alloc > 0 else v
        cap0, code0, cap1, code1 = _connector_both(
            c,
            v,
            v_mod,
            series,
            n_alloc,
            n_on,
            tab,
            lay,
            mod_type,
            mod_conn,
            mod_in,
            conn_in,
            mod_out,
            mod_code,
        )
        conn_out[c, O_CHG_I] = cap0
        conn_out[c, O_DIS_I] = 0.0 - cap1
        conn_out[c, O_CHG_P] = cap0 * v if cap0 > 0.0 else 0.0
        conn_out[c, O_DIS_P] = 0.0 - cap1 * v if cap1 > 0.0 else 0.0
        conn_code[c, 0] = code0
        conn_code[c, 1] = code1


@njit(cache=True, error_model="numpy")
def envelope_vp(
    tab, lay, mod_type, mod_conn, mod_in, conn_in, c, volts, powers, out, codes
):  # pragma: no cover - compiled
    """Envelope of connector ``c`` at each (voltage, power) point; ``out[k, E_*]``."""
    nm = mod_conn.shape[0]
    mod_out = np.zeros((nm, 4))
    mod_code = np.zeros((nm, 2), dtype=np.int64)
    series = conn_in[c, C_SERIES] > 0.5
    n_alloc, n_on = _count(c, mod_conn, mod_in)
    for k in range(volts.shape[0]):
        v = volts[k]
        v_mod = v / n_alloc if series and n_alloc > 0 else v
        cap0, code0, cap1, code1 = _connector_both(
            c,
            v,
            v_mod,
            series,
            n_alloc,
            n_on,
            tab,
            lay,
            mod_type,
            mod_conn,
            mod_in,
            conn_in,
            mod_out,
            mod_code,
        )
        chg_p = cap0 * v if cap0 > 0.0 else 0.0
        dis_p = 0.0 - cap1 * v if cap1 > 0.0 else 0.0
        out[k, E_CHG_I] = cap0
        out[k, E_DIS_I] = 0.0 - cap1
        out[k, E_CHG_P] = chg_p
        out[k, E_DIS_P] = dis_p
        p = powers[k]
        out[k, E_FEASIBLE] = 1.0 if (p <= chg_p and p >= dis_p) else 0.0
        codes[k, 0] = code0
        codes[k, 1] = code1


@njit(cache=True, error_model="numpy")
def envelope_pq(
    tab, lay, mod_type, mod_conn, mod_in, conn_in, c, v, p_ac, q_var, out, codes
):  # pragma: no cover - compiled
    """P-Q capability of connector ``c`` at DC voltage ``v``; ``out[k, PQ_*]``, ``codes[k]``.

    ``q_var`` is shared equally over the online modules; ``p_ac`` is AC-side active power
    (positive drawn from the grid).
    """
    nm = mod_conn.shape[0]
    mi = mod_in.copy()
    mod_out = np.zeros((nm, 4))
    mod_code = np.zeros((nm, 2), dtype=np.int64)
    series = conn_in[c, C_SERIES] > 0.5
    n_alloc, n_on = _count(c, mod_conn, mod_in)
    v_mod = v / n_alloc if series and n_alloc > 0 else v
    pf_min = 1.0
    for m in range(nm):
        if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5:
            pf_min = tab[mod_type[m], R_PF_MIN]
            break
    for k in range(p_ac.shape[0]):
        p = p_ac[k]
        q = q_var[k]
        if n_on == 0:
            out[k, PQ_P_DC] = 0.0
            out[k, PQ_FEASIBLE] = 1.0 if (p == 0.0 and q == 0.0) else 0.0
            out[k, PQ_P_AC_MAX] = 0.0
            codes[k] = NO_MODULES
            continue
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5:
                mi[m, M_Q_VAR] = q / n_on
        cap0, code0, cap1, code1 = _connector_both(
            c,
            v,
            v_mod,
            series,
            n_alloc,
            n_on,
            tab,
            lay,
            mod_type,
            mod_conn,
            mi,
            conn_in,
            mod_out,
            mod_code,
        )
        d = 0 if p >= 0.0 else 1
        share = abs(p) / n_on
        acc = 0.0
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5:
                if d == 0:
                    acc += _eff(tab[mod_type[m]], lay, v_mod, share)
                else:
                    acc += 1.0 / _eff(tab[mod_type[m]], lay, v_mod, -share)
        p_dc = p * acc / n_on
        if d == 0:
            lim = cap0 * v if cap0 > 0.0 else 0.0
            within = p_dc <= lim
            code = code0
            out[k, PQ_P_AC_MAX] = lim * n_on / acc
        else:
            lim = 0.0 - cap1 * v if cap1 > 0.0 else 0.0
            within = p_dc >= lim
            code = code1
            out[k, PQ_P_AC_MAX] = lim * acc / n_on
        pf_ok = True
        if q != 0.0:
            pf_ok = abs(p) >= pf_min * math.sqrt(p * p + q * q)
        if not pf_ok:
            code = POWER_FACTOR
        out[k, PQ_P_DC] = p_dc
        out[k, PQ_FEASIBLE] = 1.0 if (within and pf_ok) else 0.0
        codes[k] = code


@njit(cache=True, error_model="numpy")
def share(
    mod_conn, mod_in, conn_in, conn_out, mod_out, active, setpoint, mode, out_mod, out_conn
):  # pragma: no cover - compiled
    """Split each connector setpoint (A) over its modules.

    The setpoint is first clamped to the connector envelope (``out_conn``). Series: every
    module carries the string current. Parallel: ``mode`` 0 = equal split with water-filling
    (modules at their limit keep it, the rest share the remainder), 1 = proportional to
    each module's limit. Modules with ``active <= 0.5`` are left at zero unless the active
    ones cannot carry the setpoint.
    """
    nm = mod_conn.shape[0]
    nc = conn_in.shape[0]
    for m in range(nm):
        out_mod[m] = 0.0
    for c in range(nc):
        sp = setpoint[c]
        if sp != sp:
            sp = 0.0
        if sp > conn_out[c, O_CHG_I]:
            sp = conn_out[c, O_CHG_I]
        if sp < conn_out[c, O_DIS_I]:
            sp = conn_out[c, O_DIS_I]
        out_conn[c] = sp
        if sp == 0.0:
            continue
        if conn_in[c, C_SERIES] > 0.5:
            for m in range(nm):
                if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5:
                    out_mod[m] = sp
            continue
        if sp > 0.0:
            col = O_CHG_I
            sgn = 1.0
        else:
            col = O_DIS_I
            sgn = -1.0
        mag = sgn * sp
        cap_act = 0.0
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5 and active[m] > 0.5:
                cm = sgn * mod_out[m, col]
                if cm > 0.0:
                    cap_act += cm
        use_all = cap_act < mag
        n_sel = 0
        total = 0.0
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5 and (use_all or active[m] > 0.5):
                cm = sgn * mod_out[m, col]
                if cm > 0.0:
                    n_sel += 1
                    total += cm
        if n_sel == 0:
            out_conn[c] = 0.0
            continue
        if mode == 1:
            for m in range(nm):
                if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5 and (use_all or active[m] > 0.5):
                    cm = sgn * mod_out[m, col]
                    if cm > 0.0:
                        x = mag * cm / total
                        out_mod[m] = sgn * (x if x < cm else cm)
            continue
        level = mag / n_sel
        for _ in range(n_sel):
            s_sat = 0.0
            k_unsat = 0
            for m in range(nm):
                if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5 and (use_all or active[m] > 0.5):
                    cm = sgn * mod_out[m, col]
                    if cm > 0.0:
                        if cm < level:
                            s_sat += cm
                        else:
                            k_unsat += 1
            if k_unsat == 0:
                break
            new_level = (mag - s_sat) / k_unsat
            if new_level == level:
                break
            level = new_level
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5 and (use_all or active[m] > 0.5):
                cm = sgn * mod_out[m, col]
                if cm > 0.0:
                    out_mod[m] = sgn * (level if level < cm else cm)


@njit(cache=True, error_model="numpy")
def dispatch_select(
    tab,
    lay,
    mod_type,
    mod_conn,
    mod_in,
    conn_in,
    mod_out,
    setpoint,
    hysteresis_w,
    active_count,
    active,
):  # pragma: no cover - compiled
    """Efficiency-aware choice of how many parallel modules run (state: ``active_count``,
    ``active``). Keeps the present count unless another saves more than ``hysteresis_w``."""
    nm = mod_conn.shape[0]
    nc = conn_in.shape[0]
    order = np.empty(nm, dtype=np.int64)
    taken = np.zeros(nm, dtype=np.int64)
    for c in range(nc):
        if conn_in[c, C_SERIES] > 0.5:
            n = 0
            for m in range(nm):
                if mod_conn[m] == c:
                    active[m] = 1.0
                    n += 1
            active_count[c] = n
            continue
        sp = setpoint[c]
        if sp != sp:
            sp = 0.0
        d = 0 if sp >= 0.0 else 1
        col = O_CHG_I if d == 0 else O_DIS_I
        sgn = 1.0 if d == 0 else -1.0
        mag = sgn * sp
        v = conn_in[c, C_VOLTAGE]
        n = 0
        for m in range(nm):
            taken[m] = 0
        for m in range(nm):
            if mod_conn[m] == c and mod_in[m, M_ONLINE] > 0.5 and sgn * mod_out[m, col] > 0.0:
                n += 1
            else:
                taken[m] = 1
                if mod_conn[m] == c:
                    active[m] = 0.0
        if n == 0:
            active_count[c] = 0
            continue
        # order: previously active first, then larger limit, then lower index
        for j in range(n):
            best = -1
            for m in range(nm):
                if taken[m] == 1:
                    continue
                if best < 0:
                    best = m
                    continue
                am = active[m] > 0.5
                ab = active[best] > 0.5
                cm = sgn * mod_out[m, col]
                cb = sgn * mod_out[best, col]
                if (am and not ab) or (am == ab and cm > cb):
                    best = m
            order[j] = best
            taken[best] = 1
        cur = active_count[c]
        best_k = n
        best_loss = _INF
        cur_loss = _INF
        mincap = _INF
        for k in range(1, n + 1):
            cm = sgn * mod_out[order[k - 1], col]
            if cm < mincap:
                mincap = cm
            per = mag / k
            if per > mincap:
                continue
            p = per * v
            loss = 0.0
            for j in range(k):
                row = tab[mod_type[order[j]]]
                if d == 0:
                    e = _eff(row, lay, v, p)
                    loss += p * (1.0 / e - 1.0)
                else:
                    e = _eff(row, lay, v, -p)
                    loss += p * (1.0 - e)
            if loss < best_loss:
                best_loss = loss
                best_k = k
            if k == cur:
                cur_loss = loss
        if cur_loss < _INF and cur_loss - best_loss <= hysteresis_w:
            best_k = cur
        active_count[c] = best_k
        for j in range(n):
            active[order[j]] = 1.0 if j < best_k else 0.0


@njit(cache=True, error_model="numpy")
def ramp_step(state, target, rate, volt, vmin, dt, stop):  # pragma: no cover - compiled
    """Symmetric rate limiter: ``state`` moves toward ``target`` by at most
    ``rate * dt / max(volt, vmin)``; a sign change stops at zero for one step; ``stop``
    zeroes at once (safety stop bypasses the ramp)."""
    for i in range(state.shape[0]):
        if stop[i] > 0.5:
            state[i] = 0.0
            continue
        t = target[i]
        if t != t:
            t = 0.0
        vv = volt[i]
        if not (vv >= vmin):
            vv = vmin
        r = rate[i] * dt / vv
        if not (r >= 0.0):
            r = 0.0
        s = state[i]
        if (s > 0.0 and t < 0.0) or (s < 0.0 and t > 0.0):
            t = 0.0
        if t > s + r:
            s = s + r
        elif t < s - r:
            s = s - r
        else:
            s = t
        state[i] = s


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel for the dtypes the engine uses."""
    from bptd.limits.samples import sample_station

    s = sample_station(n_modules=2, n_connectors=2)
    args = (s.tab, s.lay, s.mod_type, s.mod_conn, s.mod_in, s.conn_in)
    station_limits(*args, s.conn_out, s.conn_code, s.mod_out, s.mod_code)
    volts = np.array([400.0, 800.0])
    powers = np.array([1000.0, -1000.0])
    envelope_vp(*args, 0, volts, powers, np.zeros((2, 5)), np.zeros((2, 2), dtype=np.int64))
    envelope_pq(*args, 0, 400.0, powers, powers, np.zeros((2, 3)), np.zeros(2, dtype=np.int64))
    setpoint = np.array([10.0, -10.0])
    active = np.ones(2)
    count = np.zeros(2, dtype=np.int64)
    dispatch_select(*args, s.mod_out, setpoint, 20.0, count, active)
    share(
        s.mod_conn,
        s.mod_in,
        s.conn_in,
        s.conn_out,
        s.mod_out,
        active,
        setpoint,
        0,
        np.zeros(2),
        np.zeros(2),
    )
    ramp_step(np.zeros(2), setpoint, np.full(2, 3e4), np.full(2, 400.0), 150.0, 0.01, np.zeros(2))
