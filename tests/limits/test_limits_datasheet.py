"""Datasheet numbers of the BMPU-R2-500-32 and the binding constraint of each limit."""

from __future__ import annotations

import math

import pytest

from bptd.limits import BMPU_R2_500_32, Curve, HardLimits, LimitsEngine, ModuleRatings

approx = pytest.approx


def tick(eng: LimitsEngine, voltage_v: float, **kw: object) -> tuple[float, float]:
    lim = eng.compute(voltage_v=[voltage_v], **kw)  # type: ignore[arg-type]
    return float(lim.charge_current_a[0]), float(lim.discharge_current_a[0])


def test_one_module_at_500_v_charges_21_a_discharges_minus_22_a(one_module: LimitsEngine) -> None:
    chg, dis = tick(one_module, 500.0)
    assert chg == approx(21.0)
    assert dis == approx(-22.0)
    assert one_module.limits.charge_power_w[0] == approx(10_500.0)
    assert one_module.limits.discharge_power_w[0] == approx(-11_000.0)
    assert one_module.binding(0) == ("module_soa", "module_soa")


def test_one_module_at_300_v_is_current_limited(one_module: LimitsEngine) -> None:
    assert tick(one_module, 300.0) == (approx(30.0), approx(-32.0))


def test_constant_current_up_to_350_v_then_constant_power(one_module: LimitsEngine) -> None:
    assert tick(one_module, 350.0)[0] == approx(30.0)
    assert tick(one_module, 420.0)[0] == approx(10_500.0 / 420.0)
    assert tick(one_module, 11_000.0 / 32.0)[1] == approx(-32.0)
    assert tick(one_module, 400.0)[1] == approx(-27.5)


@pytest.mark.parametrize("voltage_v", [249.9, 200.0, 150.0])
def test_below_250_v_no_discharge_but_charge(one_module: LimitsEngine, voltage_v: float) -> None:
    chg, dis = tick(one_module, voltage_v)
    assert dis == 0.0
    assert chg == approx(30.0)
    assert one_module.binding(0) == ("module_soa", "voltage_window")


@pytest.mark.parametrize("voltage_v", [0.0, 149.0, 500.5, 800.0, math.nan, -400.0])
def test_outside_the_window_nothing(one_module: LimitsEngine, voltage_v: float) -> None:
    assert tick(one_module, voltage_v) == (0.0, 0.0)
    assert one_module.binding(0) == ("voltage_window", "voltage_window")
    assert one_module.limits.charge_power_w[0] == 0.0


def test_two_in_series_at_800_v_reach_21_kw_and_minus_22_kw(two_modules: LimitsEngine) -> None:
    two_modules.set_allocation(0, [0, 1], "series")
    chg, dis = tick(two_modules, 800.0)
    assert two_modules.limits.charge_power_w[0] == approx(21_000.0)
    assert two_modules.limits.discharge_power_w[0] == approx(-22_000.0)
    assert (chg, dis) == (approx(26.25), approx(-27.5))  # string current at 400 V per module
    assert list(two_modules.module_voltage_v()) == [400.0, 400.0]


def test_series_reaches_1000_v_and_parallel_adds_currents(two_modules: LimitsEngine) -> None:
    two_modules.set_allocation(0, [0, 1], "series")
    assert tick(two_modules, 1000.0) == (approx(21.0), approx(-22.0))
    two_modules.set_allocation(0, [0, 1], "parallel")
    assert tick(two_modules, 300.0) == (approx(60.0), approx(-64.0))
    assert tick(two_modules, 600.0) == (0.0, 0.0)


def test_derated_module_lowers_envelope_and_the_other_picks_up(two_modules: LimitsEngine) -> None:
    two_modules.set_allocation(0, [0, 1], "parallel")
    assert tick(two_modules, 400.0, temp_c=[25.0, 25.0])[0] == approx(52.5)
    assert list(two_modules.share([40.0])) == [approx(20.0), approx(20.0)]
    # module 1 at 85 degC: default derating 0.5 -> 26.25 * 0.5 = 13.125 A
    chg, dis = tick(two_modules, 400.0, temp_c=[25.0, 85.0])
    assert chg == approx(26.25 + 13.125)
    assert dis == approx(-(27.5 + 13.75))
    assert two_modules.binding(0) == ("thermal_derating", "thermal_derating")
    assert two_modules.limits.module_charge_current_a[1] == approx(13.125)
    shares = two_modules.share([30.0])
    assert list(shares) == [approx(30.0 - 13.125), approx(13.125)]
    shares = two_modules.share([50.0])  # beyond the new envelope: clamped
    assert two_modules.shared_connector_a[0] == approx(39.375)
    assert list(shares) == [approx(26.25), approx(13.125)]


def test_module_dropping_out_redistributes(two_modules: LimitsEngine) -> None:
    two_modules.set_allocation(0, [0, 1], "parallel")
    tick(two_modules, 400.0, online=[1.0, 0.0])
    assert two_modules.limits.charge_current_a[0] == approx(26.25)
    assert list(two_modules.share([-20.0])) == [approx(-20.0), 0.0]
    assert two_modules.limits.module_binding_charge[1] == 12  # module_offline
    two_modules.set_allocation(0, [0, 1], "series")
    assert tick(two_modules, 800.0) == (0.0, 0.0)
    assert two_modules.binding(0) == ("no_modules", "no_modules")


def test_proportional_sharing(backend: str) -> None:
    eng = LimitsEngine(2, 1, backend=backend, share_mode="proportional")
    eng.set_allocation(0, [0, 1])
    eng.compute(voltage_v=[400.0], temp_c=[25.0, 85.0])
    shares = eng.share([19.6875])  # half the envelope
    assert list(shares) == [approx(13.125), approx(6.5625)]


def test_ac_side_limit_formula(backend: str) -> None:
    flat = ModuleRatings(efficiency=None, efficiency_nominal=0.95)
    eng = LimitsEngine(1, 1, [flat], backend=backend)
    eng.set_allocation(0, [0])
    chg, dis = tick(eng, 500.0, grid_voltage_v=[200.0])
    assert chg == approx(16 * 200 * 3 * 0.95 / 500)  # AC in x efficiency
    assert dis == approx(-16 * 200 * 3 / 0.95 / 500)  # AC out / efficiency
    assert eng.binding(0) == ("ac_limit", "ac_limit")
    # reactive power takes its share of the apparent power
    s = 16 * 230 * 3
    q = 0.8 * s
    chg, _ = tick(eng, 500.0, grid_voltage_v=[230.0], reactive_power_var=[q])
    assert chg == approx(math.sqrt(s * s - q * q) * 0.95 / 500)


def test_default_efficiency_map_lets_nominal_grid_carry_the_dc_ratings(backend: str) -> None:
    eng = LimitsEngine(1, 1, backend=backend)
    eng.set_allocation(0, [0])
    for v in (350.0, 400.0, 450.0, 500.0):
        tick(eng, v, grid_voltage_v=[230.0])
        assert eng.binding(0) == ("module_soa", "module_soa")
    chg, _ = tick(eng, 500.0, grid_voltage_v=[200.0])
    assert eng.binding(0)[0] == "ac_limit"
    assert 16 * 200 * 3 * 0.94 / 500 < chg < 16 * 200 * 3 * 0.97 / 500


@pytest.mark.parametrize("grid_v", [80.0, 310.0])
def test_grid_voltage_out_of_range_stops_the_module(
    one_module: LimitsEngine, grid_v: float
) -> None:
    assert tick(one_module, 400.0, grid_voltage_v=[grid_v]) == (0.0, 0.0)
    assert one_module.binding(0) == ("ac_limit", "ac_limit")


def test_user_ev_and_hard_limits_bind_with_their_names(one_module: LimitsEngine) -> None:
    eng = one_module
    eng.set_user_limits(0, charge_current_a=10.0, discharge_power_w=-3000.0)
    assert tick(eng, 500.0) == (approx(10.0), approx(-6.0))
    assert eng.binding(0) == ("user_current", "user_power")
    eng.set_user_limits(0, discharge_current_a=0.0)
    assert tick(eng, 500.0)[1] == 0.0
    assert eng.binding(0) == ("module_soa", "user_current")
    eng.set_user_limits(0, ac_current_a=8.0)
    chg, dis = tick(eng, 500.0)
    assert eng.binding(0) == ("user_ac_current", "user_ac_current")
    assert 8 * 230 * 3 * 0.94 / 500 < chg < 8 * 230 * 3 * 0.97 / 500
    assert 8 * 230 * 3 / 0.97 / 500 < -dis < 8 * 230 * 3 / 0.94 / 500
    eng.set_user_limits(0)
    eng.set_ev_limits(0, charge_power_w=5000.0, discharge_current_a=-12.0)
    assert tick(eng, 500.0) == (approx(10.0), approx(-12.0))
    assert eng.binding(0) == ("ev_power", "ev_current")
    eng.set_ev_limits(0, charge_voltage_max_v=450.0, discharge_voltage_min_v=300.0)
    assert tick(eng, 450.0) == (0.0, approx(-11_000.0 / 450.0))
    assert eng.binding(0) == ("ev_voltage", "module_soa")
    assert tick(eng, 300.0) == (approx(30.0), 0.0)
    assert eng.binding(0) == ("module_soa", "ev_voltage")
    eng.set_ev_limits(0)
    eng.set_hard_limits(0, HardLimits(charge_current_a=15.0, voltage_max_v=450.0))
    assert tick(eng, 400.0) == (approx(15.0), approx(-27.5))
    assert eng.binding(0) == ("hard_limit", "module_soa")
    assert tick(eng, 460.0) == (0.0, 0.0)
    assert eng.binding(0) == ("hard_limit", "hard_limit")


def test_nan_limits_are_conservative(one_module: LimitsEngine) -> None:
    one_module.set_user_limits(0, charge_current_a=math.nan)
    assert tick(one_module, 400.0)[0] == 0.0
    one_module.set_user_limits(0)
    assert tick(one_module, 400.0, temp_c=[math.nan]) == (0.0, 0.0)  # no sensor: derate fully
    assert one_module.binding(0) == ("thermal_derating", "thermal_derating")


def test_no_allocation(backend: str) -> None:
    eng = LimitsEngine(2, 2, backend=backend)
    eng.set_allocation(0, [0])
    lim = eng.compute(voltage_v=[400.0, 400.0])
    assert eng.binding(1) == ("no_modules", "no_modules")
    assert lim.charge_current_a[1] == 0.0
    assert list(lim.module_binding_charge) == [0, 13]  # module_soa, not_allocated
    status = eng.status()
    assert status["modules"][1]["binding_charge"] == "not_allocated"  # type: ignore[index]


def test_datasheet_curve_shape_and_mixed_module_types(backend: str) -> None:
    shaped = ModuleRatings(
        name="shaped",
        charge_current_curve=Curve((150.0, 500.0), (30.0, 15.0)),
        thermal_derating=None,
    )
    charge_only = ModuleRatings(name="MPU", discharge_current_min_a=0.0, discharge_power_min_w=0.0)
    eng = LimitsEngine(2, 1, [shaped, charge_only], [0, 1], backend=backend)
    eng.set_allocation(0, [0, 1])
    chg, dis = tick(eng, 500.0)
    assert eng.limits.module_charge_current_a[0] == approx(15.0)
    assert chg == approx(15.0 + 21.0)
    assert dis == approx(-22.0)
    assert eng.binding(0) == ("module_soa", "module_soa")


def test_ratings_validate_signs() -> None:
    with pytest.raises(ValueError, match="discharge"):
        ModuleRatings(discharge_current_min_a=32.0)
    with pytest.raises(ValueError):
        Curve((1.0, 1.0), (0.0, 1.0))
    r = ModuleRatings.from_dict(
        {"name": "x", "charge_current_max_a": 20.0, "thermal_derating": [[60, 70], [1, 0]]}
    )
    assert r.thermal_derating == Curve((60.0, 70.0), (1.0, 0.0))
    assert BMPU_R2_500_32.ramp_rate_w_per_s == 30_000.0
    with pytest.raises(ValueError, match="unknown"):
        ModuleRatings.from_dict({"charge_current_max": 1})


def test_ratings_from_the_station_config_match_the_datasheet_defaults() -> None:
    from bptd.config import ModuleRatingsConfig
    from bptd.limits import ratings_from_config

    r = ratings_from_config(ModuleRatingsConfig())
    assert r.thermal_derating == BMPU_R2_500_32.thermal_derating
    for f in (
        "charge_voltage_min_v",
        "discharge_voltage_min_v",
        "charge_current_max_a",
        "discharge_current_min_a",
        "charge_power_max_w",
        "discharge_power_min_w",
        "ac_current_per_phase_a",
        "ac_phases",
        "power_factor_min",
        "ramp_rate_w_per_s",
    ):
        assert getattr(r, f) == getattr(BMPU_R2_500_32, f), f
