"""The station's physics: modules, chipsets and vehicles wired by the contactors.

Pure: ``step(now, dt_s)`` advances everything; no bus, no threads, no clock. The bus glue
(:mod:`bptd.sim.station`) copies commands in and status out around each step.

Electrical model per connector: the modules routed to it (by the *feedback* of its
chipset's routing contactors, in parallel or, with the series link, in series) feed a DC
bus. With the output contactors and the vehicle's contactors closed, the bus is the
battery (open-circuit voltage plus internal resistance); otherwise it is an output
capacitance that the modules charge in voltage control and that is actively discharged
when no module runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bptd.codes import OUTPUTS, SERIES, routed_modules
from bptd.config import Config
from bptd.sim.chipset import ChipsetModel
from bptd.sim.module import ModuleModel
from bptd.sim.vehicle import Vehicle

INLET_BLEED_TIME_CONSTANT_S = 0.2


@dataclass
class ConnectorCircuit:
    """What flows at one connector this step."""

    bus_voltage_v: float = 0.0
    current_a: float = 0.0
    modules: tuple[int, ...] = ()
    series: bool = False
    energy_to_vehicle_wh: float = 0.0
    energy_from_vehicle_wh: float = 0.0


@dataclass
class Plant:
    config: Config
    modules: dict[int, ModuleModel] = field(default_factory=dict)
    chipsets: dict[str, ChipsetModel] = field(default_factory=dict)
    circuits: dict[str, ConnectorCircuit] = field(default_factory=dict)
    now: float = 0.0

    def __post_init__(self) -> None:
        cfg = self.config
        for m in cfg.modules:
            self.modules[m.n] = ModuleModel(m.n, cfg.module_ratings, cfg.sim)
        for c in cfg.connectors:
            self.chipsets[c.name] = ChipsetModel(c.name, cfg.sim)
            self.circuits[c.name] = ConnectorCircuit()
        self._free_voltage: dict[int, float] = dict.fromkeys(self.modules, 0.0)

    # ------------------------------------------------------------------ vehicles
    def plug(self, connector: str, vehicle: Vehicle) -> None:
        self.chipsets[connector].vehicle = vehicle

    def unplug(self, connector: str) -> Vehicle | None:
        ch = self.chipsets[connector]
        v, ch.vehicle = ch.vehicle, None
        return v

    # ------------------------------------------------------------------ step
    def step(self, now: float, dt_s: float) -> None:
        self.now = now
        for ch in self.chipsets.values():
            ch.step(now, dt_s)
        routes: dict[int, list[str]] = {}
        for name, ch in self.chipsets.items():
            for n in routed_modules(ch.feedback):
                routes.setdefault(n, []).append(name)
        conflicted = {n for n, names in routes.items() if len(names) > 1}
        for name, ch in self.chipsets.items():
            ch.routing_conflict = any(name in routes[n] for n in conflicted)
        for m in self.modules.values():
            m.step(now, dt_s)
        routed: set[int] = set()
        for name, ch in self.chipsets.items():
            mods = [
                n for n in routed_modules(ch.feedback) if n in self.modules and n not in conflicted
            ]
            routed.update(mods)
            self._solve_connector(name, ch, mods, dt_s)
        for n, m in self.modules.items():
            if n not in routed:
                self._solve_free(n, m, dt_s)

    def _solve_connector(self, name: str, ch: ChipsetModel, mods: list[int], dt_s: float) -> None:
        circ = self.circuits[name]
        vehicle = ch.vehicle
        outputs = ch.outputs_closed
        battery = outputs and vehicle is not None and vehicle.contactors_closed
        series = bool(ch.feedback & SERIES) and len(mods) > 1
        models = [self.modules[n] for n in mods]
        cap = self.config.sim.output_capacitance_f * max(1, len(models))
        v_bus = circ.bus_voltage_v
        if not models:
            current = 0.0
            v_bus = 0.0
        else:
            if battery:
                assert vehicle is not None
                v_bus = vehicle.terminal_voltage_v
            ocv = vehicle.ocv_v if battery and vehicle else None
            r = vehicle.spec.internal_resistance_ohm if battery and vehicle else 0.0
            if series:
                k = len(models)
                v_mod = v_bus / k
                targets = [
                    m.regulator_target(
                        v_mod, ocv / k if ocv is not None else None, r / k, cap * k, dt_s, 1
                    )
                    for m in models
                ]
                if all(t >= 0 for t in targets):
                    target = min(targets)
                elif all(t <= 0 for t in targets):
                    target = max(targets)
                else:
                    target = 0.0
                if not all(m.running for m in models):
                    target = 0.0
                if battery:
                    rate = min(m.ramp_a_per_s(v_mod) for m in models) * dt_s
                    prev = models[0].current_a
                    current = prev + max(-rate, min(rate, target - prev))
                else:
                    current = target
                if not all(m.running for m in models):
                    current = 0.0
                for m in models:
                    m.current_a = current
                    m.target_a = target
            else:
                current = 0.0
                for m in models:
                    t = m.regulator_target(v_bus, ocv, r * len(models), cap, dt_s, len(models))
                    if battery:
                        current += m.ramp_toward(t, v_bus, dt_s)
                    else:
                        m.target_a = t
                        m.current_a = t if m.running else 0.0
                        current += m.current_a
            if battery:
                assert vehicle is not None
                vehicle.integrate(current, dt_s)
                v_bus = vehicle.terminal_voltage_v
            else:
                v_bus = max(0.0, v_bus + current * dt_s / cap)
                if not any(m.running for m in models):
                    v_bus *= math.exp(-dt_s / self.config.sim.fast_discharge_time_constant_s)
            for m in models:
                m.voltage_v = v_bus / len(models) if series else v_bus
        if battery:
            assert vehicle is not None
            energy = current * v_bus * dt_s / 3600.0
            if energy >= 0:
                circ.energy_to_vehicle_wh += energy
            else:
                circ.energy_from_vehicle_wh -= energy
        elif vehicle is not None and vehicle.current_a:
            vehicle.integrate(0.0, dt_s)
        circ.bus_voltage_v = v_bus
        circ.current_a = current if outputs else 0.0
        circ.modules = tuple(mods)
        circ.series = series
        # what the chipset measures at the inlet
        if outputs and models:
            ch.inlet_voltage_v = v_bus
        elif vehicle is not None and vehicle.contactors_closed:
            ch.inlet_voltage_v = vehicle.terminal_voltage_v
        else:
            ch.inlet_voltage_v *= math.exp(-dt_s / INLET_BLEED_TIME_CONSTANT_S)
            if outputs and not models:
                ch.inlet_voltage_v = 0.0
        ch.connector_current_a = circ.current_a
        if ch.feedback & OUTPUTS != OUTPUTS and vehicle is not None:
            vehicle.current_a = 0.0

    def _solve_free(self, n: int, m: ModuleModel, dt_s: float) -> None:
        """A module routed nowhere: voltage control into its own output capacitance."""
        cap = self.config.sim.output_capacitance_f
        v = self._free_voltage[n]
        t = m.regulator_target(v, None, 0.0, cap, dt_s, 1)
        m.target_a = t
        m.current_a = t if m.running else 0.0
        v = max(0.0, v + m.current_a * dt_s / cap)
        if not m.running:
            v *= math.exp(-dt_s / self.config.sim.fast_discharge_time_constant_s)
        self._free_voltage[n] = v
        m.voltage_v = v
