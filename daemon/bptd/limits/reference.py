"""Plain-Python reference of the limits kernels.

Same names, signatures and results as :mod:`bptd.limits.kernels` (to 1e-9), written for
reading: the arrays are turned into Python lists and small per-type records first, the
arithmetic is done on floats, and the results are written back into the output arrays.
It is also what the daemon runs when numba is unavailable.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bptd.limits import layout as L

_INF = math.inf


class _Type(NamedTuple):
    """One module type, unpacked from its ``rtab`` row."""

    window: tuple[tuple[float, float], tuple[float, float]]  # (vmin, vmax) per direction
    current: tuple[float, float]  # rating magnitude per direction
    power: tuple[float, float]
    curves: tuple[tuple[list[float], list[float]], tuple[list[float], list[float]]]
    thermal: tuple[list[float], list[float]]
    ac_i_phase: float
    ac_phases: float
    ac_v_nom: float
    ac_v_min: float
    ac_v_max: float
    eff_const: float
    eff_v: list[float]
    eff_p: list[float]
    eff_grid: list[list[float]]
    pf_min: float


def _unpack(tab: np.ndarray, lay: np.ndarray) -> list[_Type]:
    lay_l = [int(x) for x in lay.tolist()]
    out = []
    for row in tab.tolist():

        def block(slot: int, n: int, row: list[float] = row) -> list[float]:
            return row[lay_l[slot] : lay_l[slot] + n]

        n_cc, n_dc = int(row[L.R_N_CHG_CURVE]), int(row[L.R_N_DIS_CURVE])
        n_t, n_v, n_p = int(row[L.R_N_THERM]), int(row[L.R_N_EFF_V]), int(row[L.R_N_EFF_P])
        kp = lay_l[L.L_EFF_KP]
        grid = [
            row[lay_l[L.L_EFF_GRID] + i * kp : lay_l[L.L_EFF_GRID] + i * kp + n_p]
            for i in range(n_v)
        ]
        out.append(
            _Type(
                window=(
                    (row[L.R_CHG_V_MIN], row[L.R_CHG_V_MAX]),
                    (row[L.R_DIS_V_MIN], row[L.R_DIS_V_MAX]),
                ),
                current=(row[L.R_CHG_I], row[L.R_DIS_I]),
                power=(row[L.R_CHG_P], row[L.R_DIS_P]),
                curves=(
                    (block(L.L_CHG_CURVE_V, n_cc), block(L.L_CHG_CURVE_I, n_cc)),
                    (block(L.L_DIS_CURVE_V, n_dc), block(L.L_DIS_CURVE_I, n_dc)),
                ),
                thermal=(block(L.L_THERM_T, n_t), block(L.L_THERM_F, n_t)),
                ac_i_phase=row[L.R_AC_I_PHASE],
                ac_phases=row[L.R_AC_PHASES],
                ac_v_nom=row[L.R_AC_V_NOM],
                ac_v_min=row[L.R_AC_V_MIN],
                ac_v_max=row[L.R_AC_V_MAX],
                eff_const=row[L.R_EFF_CONST],
                eff_v=block(L.L_EFF_V, n_v),
                eff_p=block(L.L_EFF_P, n_p),
                eff_grid=grid,
                pf_min=row[L.R_PF_MIN],
            )
        )
    return out


def _pwl(xs: list[float], ys: list[float], x: float) -> float:
    """Piecewise-linear interpolation, constant outside; NaN x gives the last point."""
    if x <= xs[0]:
        return ys[0]
    for k in range(1, len(xs)):
        if x <= xs[k]:
            return ys[k - 1] + (ys[k] - ys[k - 1]) * (x - xs[k - 1]) / (xs[k] - xs[k - 1])
    return ys[-1]


def _segment(xs: list[float], x: float) -> tuple[int, float]:
    n = len(xs)
    if n == 1 or x <= xs[0]:
        return 0, 0.0
    if x >= xs[-1]:
        return n - 2, 1.0
    for k in range(1, n):
        if x <= xs[k]:
            return k - 1, (x - xs[k - 1]) / (xs[k] - xs[k - 1])
    return n - 2, 1.0  # pragma: no cover - unreachable for finite x


def efficiency(t: _Type, v: float, p: float) -> float:
    """Bilinear efficiency at DC voltage ``v`` and signed DC power ``p``, within [0.01, 1]."""
    if not t.eff_v or not t.eff_p:
        e = t.eff_const
    else:
        iv, fv = _segment(t.eff_v, v)
        ip, fp = _segment(t.eff_p, p)
        iv1 = iv + 1 if len(t.eff_v) > 1 else iv
        ip1 = ip + 1 if len(t.eff_p) > 1 else ip
        g = t.eff_grid
        a = g[iv][ip] + (g[iv][ip1] - g[iv][ip]) * fp
        b = g[iv1][ip] + (g[iv1][ip1] - g[iv1][ip]) * fp
        e = a + (b - a) * fv
    return min(max(e, 0.01), 1.0)


def module_limit(
    t: _Type, d: int, v: float, temp_c: float, grid_v: float, q_var: float
) -> tuple[float, int]:
    """Allowed current magnitude of one module in direction ``d`` and its binding code."""
    vmin, vmax = t.window[d]
    if not (vmin <= v <= vmax):
        return 0.0, L.VOLTAGE_WINDOW
    cap = min(t.current[d], t.power[d] / v)
    xs, ys = t.curves[d]
    if xs:
        cap = min(cap, _pwl(xs, ys, v))
    code = L.MODULE_SOA
    if t.thermal[0]:
        derated = cap * _pwl(t.thermal[0], t.thermal[1], temp_c)
        if derated < cap:
            cap, code = derated, L.THERMAL_DERATING
    if math.isnan(grid_v):
        grid_v = t.ac_v_nom
    s = t.ac_i_phase * grid_v * t.ac_phases if t.ac_v_min <= grid_v <= t.ac_v_max else 0.0
    s2 = s * s - q_var * q_var
    p_avail = math.sqrt(s2) if s2 > 0.0 else 0.0
    p_op = min(cap * v, p_avail)
    # charging: DC out = AC in x efficiency; discharging: DC in = AC out / efficiency
    e = efficiency(t, v, p_op if d == 0 else -p_op)
    p_dc = p_avail * e if d == 0 else p_avail / e
    i_ac = p_dc / v
    if i_ac < cap:
        cap, code = i_ac, L.AC_LIMIT
    return max(cap, 0.0), code


def _tighten(cap: float, code: int, x: float, new_code: int) -> tuple[float, int]:
    if not (x >= 0.0):  # negative or NaN limit: nothing allowed
        x = 0.0
    return (x, new_code) if x < cap else (cap, code)


class _Station(NamedTuple):
    types: list[_Type]
    mod_type: list[int]
    mod_conn: list[int]
    mods: list[list[float]]
    conns: list[list[float]]

    def members(self, c: int) -> list[int]:
        return [m for m, a in enumerate(self.mod_conn) if a == c]

    def online(self, m: int) -> bool:
        return self.mods[m][L.M_ONLINE] > 0.5


def _station(tab, lay, mod_type, mod_conn, mod_in, conn_in) -> _Station:  # type: ignore[no-untyped-def]
    return _Station(
        _unpack(tab, lay), mod_type.tolist(), mod_conn.tolist(), mod_in.tolist(), conn_in.tolist()
    )


def _connector_limit(
    st: _Station, c: int, d: int, v: float, members: list[int], mod_rows: list[list[float]],
    mod_codes: list[list[int]],
) -> tuple[float, int]:  # fmt: skip
    """Allowed current magnitude of connector ``c`` in direction ``d`` and its binding code."""
    conn = st.conns[c]
    series = conn[L.C_SERIES] > 0.5
    online = [m for m in members if st.online(m)]
    v_mod = v / len(members) if series and members else v
    module_caps: list[tuple[float, int]] = []
    for m in members:
        if st.online(m):
            mag, mcode = module_limit(
                st.types[st.mod_type[m]], d, v_mod, st.mods[m][L.M_TEMP_C],
                st.mods[m][L.M_GRID_V], st.mods[m][L.M_Q_VAR],
            )  # fmt: skip
            module_caps.append((mag, mcode))
        else:
            mag, mcode = 0.0, L.MODULE_OFFLINE
        power = mag * v_mod if mag > 0.0 else 0.0
        if d == 0:
            mod_rows[m][L.O_CHG_I], mod_rows[m][L.O_CHG_P] = mag, power
        else:
            mod_rows[m][L.O_DIS_I], mod_rows[m][L.O_DIS_P] = 0.0 - mag, 0.0 - power
        mod_codes[m][d] = mcode
    if not online or (series and len(online) < len(members)):
        return 0.0, L.NO_MODULES
    # series: string current is the weakest module's; parallel: currents add
    if series:
        cap = min(mag for mag, _ in module_caps)
    else:
        cap = 0.0
        for mag, _ in module_caps:
            cap += mag
    # the aggregate is bound by whatever binds the weakest module (first one on ties)
    code = module_caps[0][1]
    lowest = module_caps[0][0]
    for mag, mcode in module_caps[1:]:
        if mag < lowest:
            lowest, code = mag, mcode
    if not (cap > 0.0):
        return 0.0, code
    i_ac = conn[L.C_USER_AC_I] if d == 0 else conn[L.C_USER_AC_DIS_I]
    if not (i_ac >= 0.0):
        i_ac = 0.0
    if i_ac < _INF:
        n = len(online)
        grid_sum = 0.0
        q_tot = 0.0
        for m in online:
            g = st.mods[m][L.M_GRID_V]
            grid_sum += st.types[st.mod_type[m]].ac_v_nom if math.isnan(g) else g
            q_tot += st.mods[m][L.M_Q_VAR]
        s = i_ac * (grid_sum / n) * st.types[st.mod_type[online[0]]].ac_phases
        s2 = s * s - q_tot * q_tot
        p_avail = math.sqrt(s2) if s2 > 0.0 else 0.0
        p_share = min(cap * v, p_avail) / n
        acc = 0.0
        for m in online:
            t = st.types[st.mod_type[m]]
            if d == 0:
                acc += efficiency(t, v_mod, p_share)
            else:
                acc += 1.0 / efficiency(t, v_mod, -p_share)
        cap, code = _tighten(cap, code, p_avail * acc / n / v, L.USER_AC_CURRENT)
    if not (v <= conn[L.C_HARD_V_MAX]):
        return 0.0, L.HARD_LIMIT
    sgn = 1.0 if d == 0 else -1.0  # discharge limits are negative numbers
    cap, code = _tighten(cap, code, sgn * conn[L.C_HARD_CHG_I + d], L.HARD_LIMIT)
    cap, code = _tighten(cap, code, sgn * conn[L.C_HARD_CHG_P + d] / v, L.HARD_LIMIT)
    if cap > 0.0:
        if d == 0 and not (v < conn[L.C_EV_CHG_V_MAX]):
            return 0.0, L.EV_VOLTAGE
        if d == 1 and not (v > conn[L.C_EV_DIS_V_MIN]):
            return 0.0, L.EV_VOLTAGE
    cap, code = _tighten(cap, code, sgn * conn[L.C_EV_CHG_I + d], L.EV_CURRENT)
    cap, code = _tighten(cap, code, sgn * conn[L.C_EV_CHG_P + d] / v, L.EV_POWER)
    cap, code = _tighten(cap, code, sgn * conn[L.C_USER_CHG_I + d], L.USER_CURRENT)
    cap, code = _tighten(cap, code, sgn * conn[L.C_USER_CHG_P + d] / v, L.USER_POWER)
    return cap, code


def station_limits(
    tab: np.ndarray, lay: np.ndarray, mod_type: np.ndarray, mod_conn: np.ndarray,
    mod_in: np.ndarray, conn_in: np.ndarray, conn_out: np.ndarray, conn_code: np.ndarray,
    mod_out: np.ndarray, mod_code: np.ndarray,
) -> None:  # fmt: skip
    """One control tick: envelope of every connector and module."""
    st = _station(tab, lay, mod_type, mod_conn, mod_in, conn_in)
    nc = len(st.conns)
    mod_rows = [[0.0] * L.O_N for _ in st.mod_conn]
    mod_codes = [[L.NOT_ALLOCATED, L.NOT_ALLOCATED] for _ in st.mod_conn]
    conn_rows = []
    conn_codes = []
    for c in range(nc):
        v = st.conns[c][L.C_VOLTAGE]
        members = st.members(c)
        chg, chg_code = _connector_limit(st, c, 0, v, members, mod_rows, mod_codes)
        dis, dis_code = _connector_limit(st, c, 1, v, members, mod_rows, mod_codes)
        conn_rows.append(
            [chg, 0.0 - dis, chg * v if chg > 0.0 else 0.0, 0.0 - dis * v if dis > 0.0 else 0.0]
        )
        conn_codes.append([chg_code, dis_code])
    if nc:
        conn_out[:, : L.O_N] = conn_rows
        conn_code[:, :2] = conn_codes
    if mod_rows:
        mod_out[:, : L.O_N] = mod_rows
        mod_code[:, :2] = mod_codes


def envelope_vp(
    tab: np.ndarray, lay: np.ndarray, mod_type: np.ndarray, mod_conn: np.ndarray,
    mod_in: np.ndarray, conn_in: np.ndarray, c: int, volts: np.ndarray, powers: np.ndarray,
    out: np.ndarray, codes: np.ndarray,
) -> None:  # fmt: skip
    """Envelope of connector ``c`` at each (voltage, power) point."""
    st = _station(tab, lay, mod_type, mod_conn, mod_in, conn_in)
    members = st.members(c)
    scratch = [[0.0] * L.O_N for _ in st.mod_conn]
    scratch_codes = [[0, 0] for _ in st.mod_conn]
    rows = []
    code_rows = []
    for v, p in zip(volts.tolist(), powers.tolist(), strict=True):
        chg, chg_code = _connector_limit(st, c, 0, v, members, scratch, scratch_codes)
        dis, dis_code = _connector_limit(st, c, 1, v, members, scratch, scratch_codes)
        chg_p = chg * v if chg > 0.0 else 0.0
        dis_p = 0.0 - dis * v if dis > 0.0 else 0.0
        rows.append([chg_p, dis_p, chg, 0.0 - dis, 1.0 if dis_p <= p <= chg_p else 0.0])
        code_rows.append([chg_code, dis_code])
    if rows:
        out[:, : L.E_N] = rows
        codes[:, :2] = code_rows


def envelope_pq(
    tab: np.ndarray, lay: np.ndarray, mod_type: np.ndarray, mod_conn: np.ndarray,
    mod_in: np.ndarray, conn_in: np.ndarray, c: int, v: float, p_ac: np.ndarray,
    q_var: np.ndarray, out: np.ndarray, codes: np.ndarray,
) -> None:  # fmt: skip
    """P-Q capability of connector ``c`` at DC voltage ``v`` (AC-side P and Q)."""
    st = _station(tab, lay, mod_type, mod_conn, mod_in, conn_in)
    members = st.members(c)
    online = [m for m in members if st.online(m)]
    n = len(online)
    series = st.conns[c][L.C_SERIES] > 0.5
    v_mod = v / len(members) if series and members else v
    pf_min = st.types[st.mod_type[online[0]]].pf_min if online else 1.0
    scratch = [[0.0] * L.O_N for _ in st.mod_conn]
    scratch_codes = [[0, 0] for _ in st.mod_conn]
    for k, (p, q) in enumerate(zip(p_ac.tolist(), q_var.tolist(), strict=True)):
        if not online:
            out[k, : L.PQ_N] = [0.0, 1.0 if (p == 0.0 and q == 0.0) else 0.0, 0.0]
            codes[k] = L.NO_MODULES
            continue
        for m in online:
            st.mods[m][L.M_Q_VAR] = q / n
        chg, chg_code = _connector_limit(st, c, 0, v, members, scratch, scratch_codes)
        dis, dis_code = _connector_limit(st, c, 1, v, members, scratch, scratch_codes)
        d = 0 if p >= 0.0 else 1
        share_w = abs(p) / n
        acc = 0.0
        for m in online:
            t = st.types[st.mod_type[m]]
            acc += efficiency(t, v_mod, share_w) if d == 0 else 1.0 / efficiency(t, v_mod, -share_w)
        p_dc = p * acc / n
        if d == 0:
            lim = chg * v if chg > 0.0 else 0.0
            within, code, p_ac_max = p_dc <= lim, chg_code, lim * n / acc
        else:
            lim = 0.0 - dis * v if dis > 0.0 else 0.0
            within, code, p_ac_max = p_dc >= lim, dis_code, lim * acc / n
        pf_ok = q == 0.0 or abs(p) >= pf_min * math.sqrt(p * p + q * q)
        if not pf_ok:
            code = L.POWER_FACTOR
        out[k, : L.PQ_N] = [p_dc, 1.0 if (within and pf_ok) else 0.0, p_ac_max]
        codes[k] = code


def _water_fill(caps: list[float], total: float) -> float:
    """Level ``x`` with ``sum(min(cap, x)) == total`` (equal split, saturated modules kept)."""
    level = total / len(caps)
    for _ in caps:
        saturated = [cap for cap in caps if cap < level]
        if len(saturated) == len(caps):
            break
        s_sat = 0.0
        for cap in saturated:
            s_sat += cap
        new_level = (total - s_sat) / (len(caps) - len(saturated))
        if new_level == level:
            break
        level = new_level
    return level


def share(
    mod_conn: np.ndarray, mod_in: np.ndarray, conn_in: np.ndarray, conn_out: np.ndarray,
    mod_out: np.ndarray, active: np.ndarray, setpoint: np.ndarray, mode: int,
    out_mod: np.ndarray, out_conn: np.ndarray,
) -> None:  # fmt: skip
    """Split each connector setpoint (A) over its modules (see the kernel's docstring)."""
    alloc = mod_conn.tolist()
    online = [row[L.M_ONLINE] > 0.5 for row in mod_in.tolist()]
    act = [a > 0.5 for a in active.tolist()]
    limits = mod_out.tolist()
    result = [0.0] * len(alloc)
    clamped = []
    for c, sp in enumerate(setpoint.tolist()):
        if math.isnan(sp):
            sp = 0.0
        sp = max(min(sp, float(conn_out[c, L.O_CHG_I])), float(conn_out[c, L.O_DIS_I]))
        clamped.append(sp)
        if sp == 0.0:
            continue
        members = [m for m, a in enumerate(alloc) if a == c and online[m]]
        if conn_in[c, L.C_SERIES] > 0.5:
            for m in members:
                result[m] = sp  # one string current
            continue
        sgn, col = (1.0, L.O_CHG_I) if sp > 0.0 else (-1.0, L.O_DIS_I)
        mag = sgn * sp
        cap_active = 0.0
        for m in members:
            if act[m] and sgn * limits[m][col] > 0.0:
                cap_active += sgn * limits[m][col]
        use_all = cap_active < mag
        chosen = [
            (m, sgn * limits[m][col])
            for m in members
            if (use_all or act[m]) and sgn * limits[m][col] > 0.0
        ]
        if not chosen:
            clamped[-1] = 0.0
            continue
        if mode == 1:
            total = 0.0
            for _, cap in chosen:
                total += cap
            for m, cap in chosen:
                result[m] = sgn * min(mag * cap / total, cap)
        else:
            level = _water_fill([cap for _, cap in chosen], mag)
            for m, cap in chosen:
                result[m] = sgn * min(level, cap)
    if result:
        out_mod[:] = result
    if clamped:
        out_conn[:] = clamped


def dispatch_select(
    tab: np.ndarray, lay: np.ndarray, mod_type: np.ndarray, mod_conn: np.ndarray,
    mod_in: np.ndarray, conn_in: np.ndarray, mod_out: np.ndarray, setpoint: np.ndarray,
    hysteresis_w: float, active_count: np.ndarray, active: np.ndarray,
) -> None:  # fmt: skip
    """Efficiency-aware choice of the number of running parallel modules, with hysteresis."""
    st = _station(tab, lay, mod_type, mod_conn, mod_in, conn_in)
    limits = mod_out.tolist()
    act = active.tolist()
    counts = active_count.tolist()
    for c in range(len(st.conns)):
        members = st.members(c)
        if st.conns[c][L.C_SERIES] > 0.5:
            for m in members:
                act[m] = 1.0
            counts[c] = len(members)
            continue
        sp = setpoint[c]
        sp = 0.0 if math.isnan(sp) else float(sp)
        d = 0 if sp >= 0.0 else 1
        sgn, col = (1.0, L.O_CHG_I) if d == 0 else (-1.0, L.O_DIS_I)
        mag = sgn * sp
        v = st.conns[c][L.C_VOLTAGE]
        eligible = [m for m in members if st.online(m) and sgn * limits[m][col] > 0.0]
        for m in members:
            if m not in eligible:
                act[m] = 0.0
        if not eligible:
            counts[c] = 0
            continue
        # previously active first, then the larger limit, then the lower index
        order = sorted(eligible, key=lambda m: (not act[m] > 0.5, -sgn * limits[m][col], m))
        best_k, best_loss, cur_loss = len(order), _INF, _INF
        cur = counts[c]
        min_cap = _INF
        for k in range(1, len(order) + 1):
            min_cap = min(min_cap, sgn * limits[order[k - 1]][col])
            per = mag / k
            if per > min_cap:
                continue  # an equal split over k modules does not fit
            p = per * v
            loss = 0.0
            for m in order[:k]:
                t = st.types[st.mod_type[m]]
                if d == 0:
                    loss += p * (1.0 / efficiency(t, v, p) - 1.0)
                else:
                    loss += p * (1.0 - efficiency(t, v, -p))
            if loss < best_loss:
                best_k, best_loss = k, loss
            if k == cur:
                cur_loss = loss
        if cur_loss < _INF and cur_loss - best_loss <= hysteresis_w:
            best_k = cur  # not worth switching: hysteresis
        counts[c] = best_k
        for j, m in enumerate(order):
            act[m] = 1.0 if j < best_k else 0.0
    if act:
        active[:] = act
    if counts:
        active_count[:] = counts


def ramp_step(
    state: np.ndarray, target: np.ndarray, rate: np.ndarray, volt: np.ndarray, vmin: float,
    dt: float, stop: np.ndarray,
) -> None:  # fmt: skip
    """Symmetric rate limiter (see the kernel's docstring)."""
    result = []
    for s, t, r_w, vv, halt in zip(
        state.tolist(), target.tolist(), rate.tolist(), volt.tolist(), stop.tolist(), strict=True
    ):
        if halt > 0.5:
            result.append(0.0)  # safety stop: no ramp down
            continue
        if math.isnan(t):
            t = 0.0
        if not (vv >= vmin):
            vv = vmin
        r = r_w * dt / vv
        if not (r >= 0.0):
            r = 0.0
        if (s > 0.0 and t < 0.0) or (s < 0.0 and t > 0.0):
            t = 0.0  # a direction change passes through zero
        if t > s + r:
            s = s + r
        elif t < s - r:
            s = s - r
        else:
            s = t
        result.append(s)
    if result:
        state[:] = result
