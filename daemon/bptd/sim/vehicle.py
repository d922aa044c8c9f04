"""Virtual vehicles: a battery model (capacity, SoC, OCV curve, internal resistance) and limits."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class VehicleSpec:
    """What a vehicle is: its battery and the limits it announces."""

    name: str = "bpt"
    kind: str = "ccs"  # ccs | chademo
    bpt: bool = True  # can discharge (ISO 15118-20 BPT / CHAdeMO V2H)
    capacity_wh: float = 60000.0
    soc: float = 0.5
    # open-circuit voltage over SoC: ((soc, volts), ...), linear in between
    ocv_curve: tuple[tuple[float, float], ...] = (
        (0.0, 330.0),
        (0.1, 355.0),
        (0.9, 395.0),
        (1.0, 410.0),
    )
    internal_resistance_ohm: float = 0.08
    max_charge_current_a: float = 125.0
    max_discharge_current_a: float = 100.0
    max_charge_power_w: float = 50000.0
    max_discharge_power_w: float = 25000.0
    max_voltage_v: float = 450.0
    min_voltage_v: float = 300.0
    target_soc: float = 0.9
    min_soc: float = 0.2

    def ocv(self, soc: float) -> float:
        xs = [p[0] for p in self.ocv_curve]
        i = bisect.bisect_right(xs, soc)
        if i <= 0:
            return self.ocv_curve[0][1]
        if i >= len(xs):
            return self.ocv_curve[-1][1]
        (x0, y0), (x1, y1) = self.ocv_curve[i - 1], self.ocv_curve[i]
        return y0 + (y1 - y0) * (soc - x0) / (x1 - x0)


PRESETS: dict[str, VehicleSpec] = {
    "bpt": VehicleSpec(),
    "charge_only": VehicleSpec(
        name="charge_only",
        bpt=False,
        capacity_wh=50000.0,
        max_discharge_current_a=0.0,
        max_discharge_power_w=0.0,
    ),
    "bpt800": VehicleSpec(
        name="bpt800",
        capacity_wh=80000.0,
        ocv_curve=((0.0, 660.0), (0.1, 710.0), (0.9, 790.0), (1.0, 820.0)),
        internal_resistance_ohm=0.15,
        max_charge_current_a=100.0,
        max_discharge_current_a=60.0,
        max_charge_power_w=80000.0,
        max_discharge_power_w=40000.0,
        max_voltage_v=850.0,
        min_voltage_v=600.0,
    ),
    "chademo_v2h": VehicleSpec(
        name="chademo_v2h",
        kind="chademo",
        capacity_wh=40000.0,
        soc=0.6,
        ocv_curve=((0.0, 320.0), (0.1, 350.0), (0.9, 395.0), (1.0, 403.0)),
        internal_resistance_ohm=0.1,
        max_charge_current_a=125.0,
        max_discharge_current_a=30.0,
        max_charge_power_w=50000.0,
        max_discharge_power_w=11000.0,
        max_voltage_v=435.0,
        min_voltage_v=300.0,
    ),
}


def vehicle_spec(preset: str = "bpt", **overrides: Any) -> VehicleSpec:
    """A preset with explicit parameters on top; raises ``ValueError`` with a clear text."""
    if preset not in PRESETS:
        raise ValueError(f"unknown vehicle preset {preset!r}; presets: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    known = {f.name for f in fields(VehicleSpec)} - {"name"}
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(
                f"unknown vehicle parameter {key!r}; known: {', '.join(sorted(known))}"
            )
        if key == "ocv_curve":
            if not isinstance(value, Sequence) or len(value) < 2:
                raise ValueError("ocv_curve needs at least two (soc, volts) points")
            continue
        if key == "kind":
            if value not in ("ccs", "chademo"):
                raise ValueError("kind must be 'ccs' or 'chademo'")
            continue
        if key == "bpt":
            if not isinstance(value, bool):
                raise ValueError("bpt must be true or false")
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"vehicle parameter {key!r} must be a finite number")
        if key in ("soc", "target_soc", "min_soc"):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be within 0..1")
        elif value < 0:
            raise ValueError(f"{key} must not be negative")
    if "ocv_curve" in overrides:
        overrides["ocv_curve"] = tuple((float(s), float(v)) for s, v in overrides["ocv_curve"])
    for key in ("capacity_wh",):
        if key in overrides and overrides[key] <= 0:
            raise ValueError(f"{key} must be > 0")
    return replace(
        spec,
        **{
            k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in overrides.items()
        },
    )


@dataclass
class Vehicle:
    """A plugged vehicle: CP state it presents, its contactors and its battery.

    ``wants_stop`` is the driver asking to end charging (the ``ev`` action's ``stop``); the
    virtual EVCC (:mod:`bptd.sim.evcc`) reads it from the snapshot. A new plug starts with
    it cleared, as a new ``Vehicle``.
    """

    spec: VehicleSpec
    soc: float = field(default=0.0)
    cp: str = "B"  # B, C or D as presented by the vehicle
    contactors_closed: bool = False
    current_a: float = 0.0
    charged_wh: float = 0.0
    discharged_wh: float = 0.0
    wants_stop: bool = False

    def __post_init__(self) -> None:
        self.soc = self.spec.soc

    @property
    def ocv_v(self) -> float:
        return self.spec.ocv(self.soc)

    @property
    def terminal_voltage_v(self) -> float:
        return self.ocv_v + self.current_a * self.spec.internal_resistance_ohm

    def integrate(self, current_a: float, dt_s: float) -> None:
        """Battery current (positive = charging) flows for ``dt_s``."""
        self.current_a = current_a
        energy_wh = self.ocv_v * current_a * dt_s / 3600.0
        if energy_wh >= 0:
            self.charged_wh += energy_wh
        else:
            self.discharged_wh -= energy_wh
        self.soc = min(1.0, max(0.0, self.soc + energy_wh / self.spec.capacity_wh))

    def snapshot(self) -> Mapping[str, Any]:
        return {
            "preset": self.spec.name,
            "kind": self.spec.kind,
            "bpt": self.spec.bpt,
            "soc": round(self.soc, 6),
            "cp": self.cp,
            "contactors_closed": self.contactors_closed,
            "ocv_v": round(self.ocv_v, 3),
            "terminal_voltage_v": round(self.terminal_voltage_v, 3),
            "current_a": round(self.current_a, 3),
            "charged_wh": round(self.charged_wh, 3),
            "discharged_wh": round(self.discharged_wh, 3),
            "wants_stop": self.wants_stop,
            "target_soc": self.spec.target_soc,
            "min_soc": self.spec.min_soc,
            "limits": {
                "max_charge_current_a": self.spec.max_charge_current_a,
                "max_discharge_current_a": self.spec.max_discharge_current_a,
                "max_charge_power_w": self.spec.max_charge_power_w,
                "max_discharge_power_w": self.spec.max_discharge_power_w,
                "max_voltage_v": self.spec.max_voltage_v,
                "min_voltage_v": self.spec.min_voltage_v,
            },
        }
