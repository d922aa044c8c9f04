"""Helpers to drive the plant (pure physics) in simulated time."""

from __future__ import annotations

import dataclasses
from typing import Any

from bptd.codes import DC_MINUS, DC_PLUS, module_bits
from bptd.config import Config
from bptd.sim.chipset import ChipsetModel
from bptd.sim.module import ModuleModel
from bptd.sim.plant import Plant
from bptd.sim.vehicle import Vehicle, vehicle_spec

DT = 0.005


class Clock:
    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.t = 0.0

    def run(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t += DT
            self.plant.step(self.t, DT)

    def until(self, predicate: Any, limit_s: float) -> float:
        """Step until ``predicate()`` holds; return the time it took (or raise)."""
        start = self.t
        while not predicate():
            if self.t - start > limit_s:
                raise AssertionError(f"condition not met within {limit_s} s")
            self.t += DT
            self.plant.step(self.t, DT)
        return self.t - start


def sim_config(config: Config, **sim: Any) -> Config:
    return config.replace(sim=dataclasses.replace(config.sim, **sim))


def arm(ch: ChipsetModel) -> ChipsetModel:
    ch.operational = True
    ch.armed = True
    return ch


def run_module(m: ModuleModel, **dcdc: float) -> ModuleModel:
    m.dcdc_operational = m.afe_operational = True
    m.afe["state_request"] = 2
    m.dcdc["state_request"] = 2
    m.dcdc.update(dcdc)
    return m


def connected(
    plant: Plant,
    connector: str,
    modules: list[int],
    preset: str = "bpt",
    series: bool = False,
    **vehicle: Any,
) -> Vehicle:
    """A vehicle plugged, routed, outputs and vehicle contactors closed (feedback settled)."""
    from bptd.codes import SERIES

    v = Vehicle(vehicle_spec(preset, **vehicle))
    v.cp = "C"
    v.contactors_closed = True
    plant.plug(connector, v)
    ch = arm(plant.chipsets[connector])
    ch.cmd["contactor_command"] = (
        module_bits(modules) | DC_PLUS | DC_MINUS | (SERIES if series else 0)
    )
    clock = Clock(plant)
    clock.run(0.1)
    assert ch.outputs_closed
    return v
