"""Small pieces of per-connector and per-module state the control loop owns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from bptd.codes import MODE_AC_POWER, MODE_DC_VOLTAGE, MODE_V2L

INF = math.inf

#: ``module {mode}`` names -> the profile's operating-mode codes
MODULE_MODES = {"dc_voltage": MODE_DC_VOLTAGE, "ac_power": MODE_AC_POWER, "v2l": MODE_V2L}


@dataclass
class UserLimits:
    """Limits a frontend set with ``set_limits`` (magnitudes; ``inf`` = not set)."""

    max_charge_power_w: float = INF
    max_discharge_power_w: float = INF
    max_charge_current_a: float = INF
    max_discharge_current_a: float = INF
    max_charge_voltage_v: float = INF
    max_discharge_voltage_v: float = INF
    max_ac_charge_current_a: float = INF
    max_ac_discharge_current_a: float = INF

    def as_dict(self) -> dict[str, float | None]:
        return {f.name: (None if math.isinf(v := getattr(self, f.name)) else v)
                for f in fields(self)}  # fmt: skip


@dataclass
class ModuleSettings:
    """What ``module {n, ...}`` set for one module; applied whenever the module runs."""

    mode: str = "dc_voltage"
    reactive_power_var: float = 0.0
    power_factor: float | None = None
    ramp_w_per_s: float = 30000.0
    v2l_voltage_v: float = 230.0
    v2l_frequency_hz: float = 50.0

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class EnergyMeter:
    """DC energy of one session from the module measurements (Wh, both directions)."""

    import_wh: float = 0.0  # to the vehicle
    export_wh: float = 0.0  # from the vehicle
    peak_charge_w: float = 0.0
    peak_discharge_w: float = 0.0

    def add(self, power_w: float, dt_s: float) -> None:
        if not math.isfinite(power_w) or dt_s <= 0:
            return
        wh = power_w * dt_s / 3600.0
        if wh >= 0:
            self.import_wh += wh
            self.peak_charge_w = max(self.peak_charge_w, power_w)
        else:
            self.export_wh -= wh
            self.peak_discharge_w = max(self.peak_discharge_w, -power_w)

    def as_dict(self) -> dict[str, float]:
        return {
            "energy_import_wh": round(self.import_wh, 3),
            "energy_export_wh": round(self.export_wh, 3),
            "peak_charge_power_w": round(self.peak_charge_w, 1),
            "peak_discharge_power_w": round(self.peak_discharge_w, 1),
        }


@dataclass
class ConnectorRuntime:
    """The loop's view of one connector between ticks."""

    name: str
    index: int
    voltage_v: float = 0.0
    current_a: float = 0.0
    limits: UserLimits = field(default_factory=UserLimits)
    meter: EnergyMeter = field(default_factory=EnergyMeter)
    record_id: str | None = None
    stop_reason: str = ""  # why the recorded session is ending (first cause wins)
    allocation: tuple[tuple[int, ...], str] = ((), "parallel")
    binding: tuple[str, str] = ("", "")
    charge_limit_a: float = 0.0
    discharge_limit_a: float = 0.0
    applied_current_a: float = 0.0  # after limits and ramp, shared over the modules

    @property
    def power_w(self) -> float:
        return self.voltage_v * self.current_a


@dataclass
class ModuleRuntime:
    n: int
    index: int
    settings: ModuleSettings = field(default_factory=ModuleSettings)
    derating: bool = False  # EMCY over-temperature, derating
    tripped: bool = False  # EMCY over-temperature, trip
    command: dict[str, float] = field(default_factory=dict)  # last DC/DC command sent
