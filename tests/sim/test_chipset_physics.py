"""The chipset model: control pilot, contactors, IMD and its own safety rules."""

from __future__ import annotations

import pytest
from tests.sim.helpers import Clock, arm, connected, sim_config

from bptd import emcy
from bptd.codes import (
    CP_A,
    CP_B,
    CP_C,
    CP_F,
    CP_VOLTS,
    DC_MINUS,
    DC_PLUS,
    F_CONTACTOR,
    F_CP_LOSS,
    F_ESTOP,
    F_HEARTBEAT,
    F_INSULATION,
    F_ROUTING,
    IMD_FAULT,
    IMD_MEASURING,
    IMD_VALID,
    IMD_WARNING,
    SAFETY_ARMED,
    SAFETY_FAULT,
    module_bits,
)
from bptd.config import Config
from bptd.sim.plant import Plant
from bptd.sim.vehicle import Vehicle, vehicle_spec

OUT = DC_PLUS | DC_MINUS


@pytest.fixture
def plant(reference_config: Config) -> Plant:
    return Plant(sim_config(reference_config, contactor_delay_s=0.03, imd_measure_time_s=0.5))


def _codes(plant: Plant, name: str = "ccs") -> list[int]:
    return [e.code for e in plant.chipsets[name].emcys]


def test_control_pilot_follows_the_vehicle_and_the_pwm(plant: Plant) -> None:
    ch = arm(plant.chipsets["ccs"])
    clock = Clock(plant)
    clock.run(0.01)
    assert ch.status()["cp_state"] == CP_A and ch.status()["cp_voltage_v"] == 12.0
    v = Vehicle(vehicle_spec("bpt"))
    plant.plug("ccs", v)
    ch.cmd.update(cp_mode=1, pwm_duty_permille=50)
    clock.run(0.01)
    s = ch.status()
    assert (s["cp_state"], s["cp_voltage_v"], s["proximity"]) == (CP_B, CP_VOLTS[CP_B], 1)
    assert s["pwm_duty_measured_permille"] == 50
    v.cp = "C"
    clock.run(0.01)
    assert ch.status()["cp_state"] == CP_C
    ch.cmd["cp_mode"] = 3
    clock.run(0.01)
    assert ch.status()["cp_state"] == CP_F and ch.status()["pwm_duty_measured_permille"] == 0


def test_contactor_feedback_follows_after_the_delay(plant: Plant) -> None:
    ch = arm(plant.chipsets["ccs"])
    ch.cmd["contactor_command"] = OUT
    clock = Clock(plant)
    t = clock.until(lambda: ch.feedback == OUT, 1.0)
    assert t == pytest.approx(0.03, abs=0.011)
    assert ch.status()["safety_state"] == SAFETY_ARMED


def test_contactors_stay_open_until_the_supervisor_commands_by_pdo(plant: Plant) -> None:
    ch = plant.chipsets["ccs"]
    ch.operational = True  # but no command RPDO received yet
    ch.cmd["contactor_command"] = OUT
    Clock(plant).run(0.5)
    assert ch.feedback == 0


def test_estop_opens_everything_and_latches(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    ch = plant.chipsets["ccs"]
    ch.estop = True
    clock = Clock(plant)
    clock.run(0.1)
    assert ch.feedback & OUT == 0
    assert ch.faults & F_ESTOP and ch.safety_state == SAFETY_FAULT
    assert ch.status()["cp_state"] == CP_F
    assert emcy.ESTOP in _codes(plant)
    ch.cmd["fault_reset"] = 1  # reset while still pressed: stays latched
    clock.run(0.01)
    assert ch.faults & F_ESTOP
    ch.cmd["fault_reset"] = 0
    ch.estop = False
    clock.run(0.01)
    ch.cmd["fault_reset"] = 1
    clock.run(0.1)
    assert ch.faults == 0
    assert ch.feedback & OUT == OUT  # the command still asks for closed contactors


@pytest.mark.parametrize(
    ("ohm", "state"), [(10e6, IMD_VALID), (300e3, IMD_WARNING), (50e3, IMD_FAULT)]
)
def test_imd_classifies_insulation_in_ohm_per_volt(plant: Plant, ohm: float, state: int) -> None:
    ch = arm(plant.chipsets["ccs"])
    ch.insulation_ohm = ohm
    ch.cmd["imd_command"] = 1
    clock = Clock(plant)
    clock.run(0.02)
    assert ch.imd_state == IMD_MEASURING
    clock.until(lambda: ch.imd_state != IMD_MEASURING, 1.0)
    assert ch.imd_state == state
    assert ch.status()["insulation_kohm"] == round(ohm / 1000)


def test_insulation_fault_opens_the_contactors(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    ch = plant.chipsets["ccs"]
    ch.cmd["imd_command"] = 1
    clock = Clock(plant)
    clock.run(0.6)
    assert ch.imd_state == IMD_VALID and ch.outputs_closed
    ch.insulation_ohm = 20e3
    clock.until(lambda: ch.faults & F_INSULATION, 1.0)
    clock.run(0.05)
    assert ch.feedback & OUT == 0
    assert emcy.INSULATION_FAULT in _codes(plant)


def test_unplugging_under_load_is_a_cp_loss(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    ch = plant.chipsets["ccs"]
    plant.unplug("ccs")
    clock = Clock(plant)
    clock.run(0.05)
    assert ch.faults & F_CP_LOSS
    assert ch.feedback & OUT == 0
    assert emcy.CP_LOSS in _codes(plant)


def test_supervisor_heartbeat_loss_opens_the_contactors(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    ch = plant.chipsets["ccs"]
    ch.comm_fault("heartbeat")
    Clock(plant).run(0.05)
    assert ch.faults & F_HEARTBEAT and ch.feedback & OUT == 0
    assert emcy.HEARTBEAT_LOST in _codes(plant)


def test_a_welded_contactor_is_reported_as_a_feedback_mismatch(plant: Plant) -> None:
    connected(plant, "ccs", [1])
    ch = plant.chipsets["ccs"]
    ch.welded = DC_PLUS
    ch.cmd["contactor_command"] = module_bits([1])  # open the outputs
    clock = Clock(plant)
    clock.run(0.1)
    assert ch.feedback & DC_PLUS  # stuck closed
    assert not ch.feedback & DC_MINUS
    clock.until(lambda: ch.faults & F_CONTACTOR, 1.0)
    assert emcy.CONTACTOR_MISMATCH in _codes(plant)


def test_a_module_routed_to_both_connectors_faults_both(plant: Plant) -> None:
    a, b = arm(plant.chipsets["ccs"]), arm(plant.chipsets["chademo"])
    a.cmd["contactor_command"] = module_bits([1])
    b.cmd["contactor_command"] = module_bits([1])
    clock = Clock(plant)
    clock.run(0.1)
    assert a.faults & F_ROUTING and b.faults & F_ROUTING
    assert a.feedback == 0 and b.feedback == 0
