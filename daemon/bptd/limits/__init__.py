"""Limits engine: every number that reaches a power module is clamped here.

Pure code (arrays and numbers in, numbers out). numba kernels in :mod:`.kernels`, a
plain-Python reference in :mod:`.reference`; :class:`LimitsEngine` picks one.
"""

from __future__ import annotations

from bptd.limits.backend import warm_up
from bptd.limits.engine import ConnectorInputs, HardLimits, Limits, LimitsEngine, ModuleInputs
from bptd.limits.envelope import PQMap, VPMap, envelope_pq, envelope_vp, vp_grid
from bptd.limits.layout import BINDING_NAMES
from bptd.limits.ramp import RampLimiter
from bptd.limits.ratings import (
    BMPU_R2_500_32,
    Curve,
    EfficiencyMap,
    ModuleRatings,
    pack_ratings,
    ratings_from_config,
)

__all__ = [
    "BINDING_NAMES",
    "BMPU_R2_500_32",
    "ConnectorInputs",
    "Curve",
    "EfficiencyMap",
    "HardLimits",
    "Limits",
    "LimitsEngine",
    "ModuleInputs",
    "ModuleRatings",
    "PQMap",
    "RampLimiter",
    "VPMap",
    "envelope_pq",
    "envelope_vp",
    "pack_ratings",
    "ratings_from_config",
    "vp_grid",
    "warm_up",
]
