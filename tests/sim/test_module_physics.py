"""The power module model: what a hardware engineer checks on a bench."""

from __future__ import annotations

import pytest
from tests.sim.helpers import Clock, connected, run_module, sim_config

from bptd import emcy
from bptd.codes import DC_OUTSIDE_SOA
from bptd.codes import MODULE_FAULT as FAULT
from bptd.codes import MODULE_RUNNING as RUNNING
from bptd.config import Config
from bptd.sim.module import efficiency
from bptd.sim.plant import Plant


@pytest.fixture
def plant(reference_config: Config) -> Plant:
    return Plant(
        sim_config(reference_config, activation_delay_s=0.0, discharge_activation_delay_s=0.0)
    )


def test_current_ramps_at_the_module_rate_up_to_its_soa(plant: Plant) -> None:
    connected(plant, "ccs", [1], soc=0.5)  # about 375 V
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=30)
    clock = Clock(plant)
    clock.run(0.1)
    v = m.voltage_v
    slope = 30000.0 / v  # 30 kW/s at the present voltage, in A/s
    assert m.current_a == pytest.approx(slope * 0.1, rel=0.1)
    clock.run(1.0)
    # settles at the SOA: min(30 A, 10.5 kW / V)
    assert m.current_a == pytest.approx(min(30.0, 10500.0 / m.voltage_v), rel=0.01)


def test_ramp_is_symmetric_through_zero(plant: Plant) -> None:
    connected(plant, "ccs", [1], soc=0.5)
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=20)
    clock = Clock(plant)
    clock.run(1.0)
    assert m.current_a == pytest.approx(20.0, abs=0.01)
    m.dcdc.update(voltage_setpoint_v=300, charge_current_limit_a=0, discharge_current_limit_a=20)
    t_zero = clock.until(lambda: m.current_a <= 0.0, 2.0)
    t_full = clock.until(lambda: m.current_a <= -19.99, 2.0) + t_zero
    rate = 30000.0 / m.voltage_v
    assert t_zero == pytest.approx(20.0 / rate, rel=0.1)
    assert t_full == pytest.approx(40.0 / rate, rel=0.1)


def test_activation_delay_before_the_current_moves(reference_config: Config) -> None:
    plant = Plant(sim_config(reference_config, activation_delay_s=0.2))
    connected(plant, "ccs", [1])
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=10)
    clock = Clock(plant)
    started = clock.until(lambda: m.current_a > 0.0, 1.0)
    assert started == pytest.approx(0.2, abs=0.011)


def test_discharge_has_its_own_activation_delay(reference_config: Config) -> None:
    plant = Plant(
        sim_config(reference_config, activation_delay_s=0.05, discharge_activation_delay_s=1.0)
    )
    connected(plant, "ccs", [1])
    m = run_module(plant.modules[1], voltage_setpoint_v=300, discharge_current_limit_a=10)
    clock = Clock(plant)
    assert clock.until(lambda: m.current_a < 0.0, 2.0) == pytest.approx(1.0, abs=0.011)


def test_at_500_v_one_module_charges_21_a_and_discharges_22_a(plant: Plant) -> None:
    curve = ((0.0, 499.8), (1.0, 499.8))  # a stiff 500 V source
    connected(plant, "ccs", [1], ocv_curve=curve, max_voltage_v=520, internal_resistance_ohm=0.0)
    m = run_module(plant.modules[1], voltage_setpoint_v=520, charge_current_limit_a=30)
    clock = Clock(plant)
    clock.run(1.0)
    assert m.current_a == pytest.approx(21.0, abs=0.1)
    m.dcdc.update(voltage_setpoint_v=400, charge_current_limit_a=0, discharge_current_limit_a=32)
    clock.run(2.0)
    assert m.current_a == pytest.approx(-22.0, abs=0.1)


def test_below_250_v_the_module_refuses_to_discharge(plant: Plant) -> None:
    connected(plant, "ccs", [1], ocv_curve=((0.0, 240.0), (1.0, 245.0)), min_voltage_v=200)
    m = run_module(plant.modules[1], voltage_setpoint_v=200, discharge_current_limit_a=20)
    clock = Clock(plant)
    clock.run(0.5)
    assert m.current_a == 0.0
    assert m.dc_fault & DC_OUTSIDE_SOA
    assert emcy.OUTSIDE_SOA in [e.code for e in m.emcys_dcdc]
    # charging is still allowed there (150-500 V)
    m.dcdc.update(voltage_setpoint_v=300, charge_current_limit_a=10, discharge_current_limit_a=0)
    clock.run(0.5)
    assert m.current_a == pytest.approx(10.0, abs=0.01)
    assert not m.dc_fault & DC_OUTSIDE_SOA


def test_two_modules_in_series_at_800_v_reach_21_kw_and_minus_22_kw(plant: Plant) -> None:
    v = connected(
        plant,
        "ccs",
        [1, 2],
        preset="bpt800",
        series=True,
        ocv_curve=((0.0, 799.0), (1.0, 801.0)),
        internal_resistance_ohm=0.0,
    )
    mods = [
        run_module(plant.modules[n], voltage_setpoint_v=425, charge_current_limit_a=30)
        for n in (1, 2)
    ]
    clock = Clock(plant)
    clock.run(1.0)
    assert mods[0].voltage_v == pytest.approx(400.0, abs=1)
    power = plant.circuits["ccs"].current_a * v.terminal_voltage_v
    assert power == pytest.approx(21000.0, rel=0.01)
    for m in mods:
        m.dcdc.update(
            voltage_setpoint_v=350, charge_current_limit_a=0, discharge_current_limit_a=32
        )
    clock.run(2.0)
    power = plant.circuits["ccs"].current_a * v.terminal_voltage_v
    assert power == pytest.approx(-22000.0, rel=0.01)


def test_parallel_modules_add_their_currents(plant: Plant) -> None:
    connected(plant, "ccs", [1, 2])
    for n in (1, 2):
        run_module(plant.modules[n], voltage_setpoint_v=450, charge_current_limit_a=15)
    Clock(plant).run(1.0)
    assert plant.circuits["ccs"].current_a == pytest.approx(30.0, abs=0.05)


def test_thermal_derating_lowers_the_current_and_warns(plant: Plant) -> None:
    connected(plant, "ccs", [1], soc=0.2)
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=30)
    m.forced_temperature_c = 85.0  # halfway between 75 and 95 degC
    Clock(plant).run(1.0)
    assert m.derating() == pytest.approx(0.5)
    assert m.current_a == pytest.approx(0.5 * min(30.0, 10500.0 / m.voltage_v), rel=0.01)
    warn = [e for e in m.emcys_dcdc if e.code == emcy.OVER_TEMPERATURE]
    assert warn and warn[0].data[0] == emcy.OVERTEMP_DERATING
    assert m.dcdc_state == RUNNING


def test_over_temperature_trips_the_module(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=10)
    clock = Clock(plant)
    clock.run(0.5)
    m.forced_temperature_c = 101.0
    clock.run(0.02)
    assert m.dcdc_state == FAULT
    assert m.current_a == 0.0
    trips = [e for e in m.emcys_dcdc if e.code == emcy.OVER_TEMPERATURE and e.data[:1] == b"\x02"]
    assert trips


def test_losses_heat_the_module_towards_a_steady_temperature(plant: Plant) -> None:
    connected(plant, "ccs", [1], soc=0.2)
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=26)
    clock = Clock(plant)
    clock.run(30.0)
    t30 = m.temperature_c
    clock.run(30.0)
    assert 25.0 < t30 < m.temperature_c < 75.0


def test_ac_power_follows_the_efficiency_map(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=20)
    clock = Clock(plant)
    clock.run(1.0)
    p_dc = m.current_a * m.voltage_v
    assert m.ac_power_w == pytest.approx(p_dc / efficiency(p_dc, m.voltage_v), rel=1e-6)
    assert m.ac_power_w > p_dc
    m.dcdc.update(voltage_setpoint_v=300, charge_current_limit_a=0, discharge_current_limit_a=20)
    clock.run(2.0)
    p_dc = m.current_a * m.voltage_v
    assert p_dc < 0
    assert m.ac_power_w == pytest.approx(p_dc * efficiency(p_dc, m.voltage_v), rel=1e-6)
    assert abs(m.ac_power_w) < abs(p_dc)


def test_reactive_power_ramps_and_respects_the_power_factor_limit(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=10)
    m.afe["reactive_power_setpoint_var"] = 20000.0
    clock = Clock(plant)
    clock.run(0.2)
    assert m.reactive_power_var == pytest.approx(5000.0 * 0.2, rel=0.05)  # 5 kvar/s
    clock.run(5.0)
    # |PF| >= 0.4 -> |Q| <= |P| tan(acos 0.4), and S within 3 x 16 A x 230 V
    p = abs(m.ac_power_w)
    assert abs(m.reactive_power_var) <= p * 2.2913 + 1e-6
    assert (m.ac_power_w**2 + m.reactive_power_var**2) ** 0.5 <= 3 * 16 * 230 + 1e-6


def test_supervisor_loss_stops_the_module_at_once(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    m = run_module(plant.modules[1], voltage_setpoint_v=450, charge_current_limit_a=20)
    clock = Clock(plant)
    clock.run(1.0)
    assert m.current_a > 19
    m.comm_fault("heartbeat", "dcdc")
    clock.run(0.005)  # one step
    assert m.dcdc_state == FAULT
    assert m.current_a == 0.0
    assert emcy.HEARTBEAT_LOST in [e.code for e in m.emcys_dcdc]
    # a fault reset once the cause is gone brings it back
    m.dcdc["state_request"] = 0x80
    clock.run(0.01)
    m.dcdc["state_request"] = 2
    clock.run(0.01)
    assert m.dcdc_state == RUNNING


def test_output_discharges_below_60_v_within_one_second(plant: Plant) -> None:
    m = run_module(plant.modules[1], voltage_setpoint_v=500, charge_current_limit_a=2)
    clock = Clock(plant)
    clock.run(1.0)
    assert m.voltage_v == pytest.approx(500.0, abs=1.0)
    m.dcdc["state_request"] = 0
    t = clock.until(lambda: m.voltage_v < 60.0, 1.5)
    assert t < 1.0
