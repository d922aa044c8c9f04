"""Ramp limiter, efficiency-aware dispatch and envelope maps."""

from __future__ import annotations

import numpy as np
import pytest

from bptd.limits import BINDING_NAMES, LimitsEngine, RampLimiter, envelope_pq, vp_grid

approx = pytest.approx


def test_ramp_30_kw_per_s_per_module_in_current(backend: str) -> None:
    ramp = RampLimiter(1, backend=backend)
    out = [float(ramp.step([20.0], 0.01, voltage_v=[400.0])[0]) for _ in range(30)]
    assert out[0] == approx(0.75)  # 30 kW/s / 400 V x 10 ms
    assert out[25] == approx(19.5)
    assert out[-1] == 20.0
    assert max(np.diff([0.0, *out])) <= 0.75 + 1e-12


def test_ramp_down_and_direction_change_through_zero(backend: str) -> None:
    ramp = RampLimiter(1, 10_000.0, backend=backend)  # W/s, on powers
    ramp.reset(2_000.0)
    seen = [float(ramp.step([-2_000.0], 0.03)[0]) for _ in range(16)]
    assert seen[:3] == [approx(1_700.0), approx(1_400.0), approx(1_100.0)]
    assert 0.0 in seen  # stops at zero for one step
    i = seen.index(0.0)
    assert seen[i - 1] > 0.0 and seen[i + 1] == approx(-300.0)
    assert seen[-1] == -2_000.0


def test_safety_stop_bypasses_the_ramp_and_limits_cut_at_once(backend: str) -> None:
    ramp = RampLimiter(3, backend=backend)
    ramp.reset([25.0, -25.0, 10.0])
    out = ramp.step([25.0, -25.0, 10.0], 0.01, voltage_v=400.0, safety_stop=[True, True, False])
    assert list(out) == [0.0, 0.0, 10.0]
    out = ramp.step([30.0, -30.0, 10.0], 0.01, voltage_v=400.0, lower=-0.5, upper=0.5)
    assert list(out) == [0.5, -0.5, 0.5]
    assert list(ramp.step([5.0] * 3, 0.01, safety_stop=True)) == [0.0] * 3


def test_connector_ramp_rate_is_the_sum_of_its_modules(backend: str) -> None:
    eng = LimitsEngine(3, 2, backend=backend)
    eng.set_allocation(0, [0, 2])
    eng.set_allocation(1, [1])
    assert list(eng.connector_ramp_rate_w_per_s()) == [60_000.0, 30_000.0]


def test_dispatch_runs_fewer_modules_at_partial_load(backend: str) -> None:
    eng = LimitsEngine(4, 1, backend=backend, dispatch=True)
    eng.set_allocation(0, [0, 1, 2, 3])
    eng.compute(voltage_v=[400.0])
    shares = eng.share([5.0])  # 2 kW: one module is the most efficient
    assert int((shares != 0).sum()) == 1 and shares.sum() == approx(5.0)
    shares = eng.share([100.0])  # 40 kW needs all four
    assert int((shares != 0).sum()) == 4 and shares.sum() == approx(100.0)
    shares = eng.share([-40.0])
    assert 2 <= int((shares != 0).sum()) < 4 and shares.sum() == approx(-40.0)


def _breakeven(backend: str) -> float:
    eng = LimitsEngine(2, 1, backend=backend, dispatch=True, dispatch_hysteresis_w=0.0)
    eng.set_allocation(0, [0, 1])
    eng.compute(voltage_v=[400.0])
    for sp in np.arange(1.0, 50.0, 0.05):
        if int((eng.share([sp]) != 0).sum()) == 2:
            return float(sp)
    raise AssertionError("never switched to two modules")


def test_dispatch_hysteresis_never_flaps(backend: str) -> None:
    edge = _breakeven(backend)
    assert 5.0 < edge < 26.25  # somewhere at partial load, below one module's limit
    eng = LimitsEngine(2, 1, backend=backend, dispatch=True, dispatch_hysteresis_w=25.0)
    eng.set_allocation(0, [0, 1])
    eng.compute(voltage_v=[400.0])
    counts = []
    for k in range(200):
        sp = edge + (0.5 if k % 2 else -0.5)
        counts.append(int((eng.share([sp]) != 0).sum()))
    assert len(set(counts)) == 1
    # far from the edge it does switch
    assert int((eng.share([edge + 10.0]) != 0).sum()) == 2
    assert int((eng.share([2.0]) != 0).sum()) == 1


def test_vp_map_matches_the_tick(backend: str) -> None:
    eng = LimitsEngine(2, 1, backend=backend)
    eng.set_allocation(0, [0, 1], "series")
    volts = np.linspace(200.0, 1100.0, 46)
    powers = np.linspace(-25_000.0, 25_000.0, 51)
    emap = vp_grid(eng, 0, volts, powers)
    assert emap.feasible.shape == (46 * 51,)
    for v in (300.0, 520.0, 800.0, 1000.0, 1020.0):
        lim = eng.compute(voltage_v=[v])
        pts = emap.voltage_v == v
        assert np.all(emap.charge_power_w[pts] == lim.charge_power_w[0])
        assert np.all(emap.discharge_power_w[pts] == lim.discharge_power_w[0])
        assert np.all(emap.binding_charge[pts] == lim.binding_charge[0])
        inside = (emap.power_w[pts] <= lim.charge_power_w[0]) & (
            emap.power_w[pts] >= lim.discharge_power_w[0]
        )
        assert np.array_equal(emap.feasible[pts], inside)
    assert emap.charge_power_w.max() == approx(21_000.0)
    assert emap.discharge_power_w.min() == approx(-22_000.0)


def test_pq_map(backend: str) -> None:
    eng = LimitsEngine(1, 1, backend=backend)
    eng.set_allocation(0, [0])
    p = np.array([10_000.0, 0.0, 8_000.0, 6_000.0, -6_000.0, 2_000.0, 0.0])
    q = np.array([0.0, 5_000.0, 8_000.0, 6_000.0, -6_000.0, 6_000.0, 0.0])
    pq = envelope_pq(eng, 0, 400.0, p, q)
    assert list(pq.feasible) == [True, False, False, True, True, False, True]
    names = [BINDING_NAMES[c] for c in pq.binding]
    assert names[1] == "power_factor" and names[5] == "power_factor"
    assert names[2] == "ac_limit"  # 11.3 kVA > 11.04 kVA
    assert 0.9 * 6_000.0 < pq.p_dc_w[3] < 6_000.0  # charging: DC out < AC in
    assert pq.p_dc_w[4] < -6_000.0  # discharging: DC in > AC out
    assert pq.p_ac_max_w[0] == approx(10_500.0 / (pq.p_dc_w[0] / 10_000.0))
