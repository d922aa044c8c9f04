"""Property tests: no output exceeds any input constraint; ramps keep their rate; the numba
kernels and the plain-Python reference agree within 1e-9 on random inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptd.limits import BMPU_R2_500_32, Curve, ModuleRatings, kernels, reference
from bptd.limits import layout as L
from bptd.limits.ratings import pack_ratings
from bptd.limits.samples import default_conn_row, default_mod_row

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INF = math.inf
RTOL = 1e-9

SHAPED = ModuleRatings(
    name="shaped",
    charge_voltage_min_v=200.0,
    charge_voltage_max_v=920.0,
    discharge_voltage_min_v=300.0,
    discharge_voltage_max_v=900.0,
    charge_current_max_a=40.0,
    discharge_current_min_a=-36.0,
    charge_power_max_w=22_000.0,
    discharge_power_min_w=-20_000.0,
    charge_current_curve=Curve((200.0, 600.0, 920.0), (40.0, 30.0, 10.0)),
    discharge_current_curve=Curve((300.0, 900.0), (-36.0, -12.0)),
    thermal_derating=Curve((50.0, 70.0), (1.0, 0.2)),
    efficiency=None,
    efficiency_nominal=0.93,
)
CHARGE_ONLY = ModuleRatings(name="MPU", discharge_current_min_a=0.0, discharge_power_min_w=0.0)
TYPES = (BMPU_R2_500_32, SHAPED, CHARGE_ONLY)
TAB, LAY = pack_ratings(TYPES)


@dataclass
class Case:
    mod_type: np.ndarray
    mod_conn: np.ndarray
    mod_in: np.ndarray
    conn_in: np.ndarray

    def args(self) -> tuple[np.ndarray, ...]:
        return (TAB, LAY, self.mod_type, self.mod_conn, self.mod_in, self.conn_in)


def maybe(strategy: st.SearchStrategy[float], none: float) -> st.SearchStrategy[float]:
    return st.one_of(st.just(none), strategy, st.just(math.nan))


pos_i = maybe(st.floats(0.0, 120.0), INF)
pos_p = maybe(st.floats(0.0, 60_000.0), INF)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_mod = draw(st.integers(1, 6))
    n_conn = draw(st.integers(1, 3))
    mod_type = np.array(draw(st.lists(st.integers(0, 2), min_size=n_mod, max_size=n_mod)))
    mod_conn = np.array(draw(st.lists(st.integers(-1, n_conn - 1), min_size=n_mod, max_size=n_mod)))
    mod_in = np.tile(default_mod_row(), (n_mod, 1))
    for m in range(n_mod):
        mod_in[m, L.M_TEMP_C] = draw(maybe(st.floats(-40.0, 120.0), 25.0))
        mod_in[m, L.M_ONLINE] = float(draw(st.booleans() | st.just(True)))
        mod_in[m, L.M_GRID_V] = draw(maybe(st.floats(0.0, 350.0), math.nan))
        mod_in[m, L.M_Q_VAR] = draw(st.one_of(st.just(0.0), st.floats(-15_000.0, 15_000.0)))
    conn_in = np.tile(default_conn_row(), (n_conn, 1))
    for c in range(n_conn):
        row = conn_in[c]
        row[L.C_VOLTAGE] = draw(st.one_of(st.floats(-10.0, 1_200.0), st.just(math.nan)))
        row[L.C_SERIES] = float(draw(st.booleans()))
        for col_chg, strat in (
            (L.C_USER_CHG_I, pos_i),
            (L.C_USER_CHG_P, pos_p),
            (L.C_EV_CHG_I, pos_i),
            (L.C_EV_CHG_P, pos_p),
            (L.C_HARD_CHG_I, pos_i),
            (L.C_HARD_CHG_P, pos_p),
        ):
            row[col_chg] = draw(strat)
            row[col_chg + 1] = -draw(strat)
        row[L.C_USER_AC_I] = draw(maybe(st.floats(0.0, 64.0), INF))
        row[L.C_USER_AC_DIS_I] = draw(maybe(st.floats(0.0, 64.0), INF))
        row[L.C_EV_CHG_V_MAX] = draw(maybe(st.floats(0.0, 1_100.0), INF))
        row[L.C_EV_DIS_V_MIN] = draw(maybe(st.floats(0.0, 1_100.0), -INF))
        row[L.C_HARD_V_MAX] = draw(maybe(st.floats(0.0, 1_100.0), INF))
    return Case(mod_type, mod_conn, mod_in, conn_in)


def run_station(impl: object, case: Case) -> tuple[np.ndarray, ...]:
    nc, nm = case.conn_in.shape[0], case.mod_in.shape[0]
    out = (
        np.zeros((nc, L.O_N)),
        np.zeros((nc, 2), dtype=np.int64),
        np.zeros((nm, L.O_N)),
        np.zeros((nm, 2), dtype=np.int64),
    )
    impl.station_limits(*case.args(), *out)  # type: ignore[attr-defined]
    return out


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=RTOL, atol=RTOL, equal_nan=True))


def within(x: float, bound: float) -> bool:
    """``x <= bound`` up to rounding; a NaN or negative bound allows only zero."""
    if not bound >= 0.0:
        return x == 0.0
    return x <= bound * (1 + 1e-12) + 1e-12


@SETTINGS
@given(cases())
def test_no_output_exceeds_any_constraint(case: Case) -> None:
    conn_out, _, mod_out, _ = run_station(kernels, case)
    for c in range(case.conn_in.shape[0]):
        row = case.conn_in[c]
        v = row[L.C_VOLTAGE]
        members = [m for m in range(len(case.mod_conn)) if case.mod_conn[m] == c]
        online = [m for m in members if case.mod_in[m, L.M_ONLINE] > 0.5]
        series = row[L.C_SERIES] > 0.5
        for d, sgn in ((0, 1.0), (1, -1.0)):
            i = sgn * conn_out[c, L.O_CHG_I + d]
            p = sgn * conn_out[c, L.O_CHG_P + d]
            assert i >= 0.0 and p >= 0.0
            if i == 0.0:
                continue
            assert 0.0 < v <= row[L.C_HARD_V_MAX]
            assert v < row[L.C_EV_CHG_V_MAX] if d == 0 else v > row[L.C_EV_DIS_V_MIN]
            assert abs(p - i * v) <= 1e-9 * max(p, 1.0)
            for base in (L.C_USER_CHG_I, L.C_EV_CHG_I, L.C_HARD_CHG_I):
                assert within(i, sgn * row[base + d])
            for base in (L.C_USER_CHG_P, L.C_EV_CHG_P, L.C_HARD_CHG_P):
                assert within(p, sgn * row[base + d])
            assert online and (not series or len(online) == len(members))
            v_mod = v / len(members) if series else v
            ratings = [TYPES[int(case.mod_type[m])] for m in online]
            caps = []
            for r in ratings:
                lo, hi, i_max, p_max = (
                    (r.charge_voltage_min_v, r.charge_voltage_max_v, r.charge_current_max_a,
                     r.charge_power_max_w)
                    if d == 0
                    else (r.discharge_voltage_min_v, r.discharge_voltage_max_v,
                          -r.discharge_current_min_a, -r.discharge_power_min_w)
                )  # fmt: skip
                caps.append(min(i_max, p_max / v_mod) if lo <= v_mod <= hi else 0.0)
            assert within(i, min(caps) if series else sum(caps))
            # AC side: never more DC power than the modules' AC ratings allow at 100 % / 1 %
            s_max = sum(
                r.ac_current_per_phase_a * r.ac_voltage_max_v * r.ac_phases for r in ratings
            )
            assert within(p, s_max if d == 0 else s_max / 0.01)
            iac = row[L.C_USER_AC_I if d == 0 else L.C_USER_AC_DIS_I]
            if iac < INF:
                assert within(p, iac * 305.0 * 3 * (1.0 if d == 0 else 100.0))
    for m in range(len(case.mod_conn)):
        r = TYPES[int(case.mod_type[m])]
        assert 0.0 <= mod_out[m, L.O_CHG_I] <= r.charge_current_max_a
        assert r.discharge_current_min_a <= mod_out[m, L.O_DIS_I] <= 0.0
        assert mod_out[m, L.O_CHG_P] <= r.charge_power_max_w * (1 + 1e-12)
        assert mod_out[m, L.O_DIS_P] >= r.discharge_power_min_w * (1 + 1e-12)
        if case.mod_in[m, L.M_ONLINE] < 0.5:
            assert mod_out[m, L.O_CHG_I] == 0.0 and mod_out[m, L.O_DIS_I] == 0.0


@SETTINGS
@given(cases())
def test_numba_and_reference_agree_on_the_tick(case: Case) -> None:
    got = run_station(kernels, case)
    want = run_station(reference, case)
    for a, b in zip(got, want, strict=True):
        assert close(a, b)


@SETTINGS
@given(cases(), st.data())
def test_shares_stay_within_module_limits_and_agree(case: Case, data: st.DataObject) -> None:
    conn_out, _, mod_out, _ = run_station(kernels, case)
    nc, nm = conn_out.shape[0], mod_out.shape[0]
    setpoint = np.array(data.draw(st.lists(st.floats(-150.0, 150.0), min_size=nc, max_size=nc)))
    active = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=nm, max_size=nm)))
    mode = data.draw(st.sampled_from([0, 1]))
    results = []
    for impl in (kernels, reference):
        act = active.copy()
        count = np.zeros(nc, dtype=np.int64)
        impl.dispatch_select(*case.args(), mod_out, setpoint, 25.0, count, act)  # type: ignore[attr-defined]
        out_mod, out_conn = np.zeros(nm), np.zeros(nc)
        impl.share(  # type: ignore[attr-defined]
            case.mod_conn, case.mod_in, case.conn_in, conn_out, mod_out, act, setpoint, mode,
            out_mod, out_conn,
        )  # fmt: skip
        results.append((act, count, out_mod, out_conn))
    for a, b in zip(*results, strict=True):
        assert close(a, b)
    _, _, out_mod, out_conn = results[0]
    for m in range(nm):
        assert mod_out[m, L.O_DIS_I] - 1e-12 <= out_mod[m] <= mod_out[m, L.O_CHG_I] + 1e-12
    for c in range(nc):
        assert conn_out[c, L.O_DIS_I] <= out_conn[c] <= conn_out[c, L.O_CHG_I]
        members = case.mod_conn == c
        if case.conn_in[c, L.C_SERIES] < 0.5:
            assert abs(out_mod[members].sum() - out_conn[c]) <= 1e-9 * max(1.0, abs(out_conn[c]))


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.floats(-60.0, 60.0),  # target
            st.floats(0.0, 0.1),  # dt
            st.floats(0.0, 1_000.0),  # voltage
            st.booleans() | st.just(False),  # safety stop
        ),
        min_size=1,
        max_size=40,
    ),
    st.floats(1_000.0, 60_000.0),
)
def test_ramps_never_exceed_their_rate(
    steps: list[tuple[float, float, float, bool]], rate: float
) -> None:
    n = 1
    states = [np.zeros(n), np.zeros(n)]
    for target, dt, volt, stop in steps:
        prev = states[0].copy()
        for impl, state in zip((kernels, reference), states, strict=True):
            impl.ramp_step(  # type: ignore[attr-defined]
                state, np.full(n, target), np.full(n, rate), np.full(n, volt), 150.0, dt,
                np.full(n, float(stop)),
            )  # fmt: skip
        assert close(states[0], states[1])
        new = states[0][0]
        if stop:
            assert new == 0.0
            continue
        assert abs(new - prev[0]) <= rate * dt / max(volt, 150.0) * (1 + 1e-12) + 1e-12
        assert prev[0] * new >= 0.0  # never jumps across zero
        assert min(prev[0], target, 0.0 if prev[0] * target < 0 else target) - 1e-12 <= new
        assert new <= max(prev[0], target, 0.0 if prev[0] * target < 0 else target) + 1e-12


@settings(max_examples=40, deadline=None)
@given(cases(), st.data())
def test_envelope_maps_agree(case: Case, data: st.DataObject) -> None:
    c = data.draw(st.integers(0, case.conn_in.shape[0] - 1))
    k = 64
    volts = np.array(data.draw(st.lists(st.floats(0.0, 1_100.0), min_size=k, max_size=k)))
    powers = np.array(data.draw(st.lists(st.floats(-30e3, 30e3), min_size=k, max_size=k)))
    q = np.array(data.draw(st.lists(st.floats(-20e3, 20e3), min_size=k, max_size=k)))
    outs = []
    for impl in (kernels, reference):
        vp = np.zeros((k, L.E_N))
        vp_codes = np.zeros((k, 2), dtype=np.int64)
        impl.envelope_vp(*case.args(), c, volts, powers, vp, vp_codes)  # type: ignore[attr-defined]
        pq = np.zeros((k, L.PQ_N))
        pq_codes = np.zeros(k, dtype=np.int64)
        v = float(volts[0])
        impl.envelope_pq(*case.args(), c, v, powers, q, pq, pq_codes)  # type: ignore[attr-defined]
        outs.append((vp, vp_codes, pq, pq_codes))
    for a, b in zip(*outs, strict=True):
        assert close(a, b)
    vp = outs[0][0]
    assert np.all(vp[:, L.E_CHG_P] >= 0.0) and np.all(vp[:, L.E_DIS_P] <= 0.0)
