"""Synthetic recordings with known dynamics: a module that starts ``delay`` after the
command and ramps at ``rate``, measured every ``period`` (sample and hold, like a TPDO
on its event timer) and published at ``telemetry_hz`` (the daemon's telemetry)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dynamics:
    delay_s: float = 0.3
    rate_w_per_s: float = 20000.0
    period_s: float = 0.05
    phase_s: float = 0.0  # of the measurement clock
    telemetry_hz: float = 100.0
    noise_w: float = 0.0
    seed: int = 1


def true_power(t: np.ndarray, steps: Sequence[tuple[float, float]], d: Dynamics) -> np.ndarray:
    """The module's power: each command (time, W) starts ``delay`` later, at ``rate``."""
    p = np.zeros_like(t)
    level = 0.0
    for t_cmd, target in steps:
        start = t_cmd + d.delay_s
        moving = t >= start
        change = np.clip((t - start) * d.rate_w_per_s, 0, abs(target - level))
        p = np.where(moving, level + math.copysign(1.0, target - level) * change, p)
        level = target
    return p


def measured(
    steps: Sequence[tuple[float, float]], t_end: float, d: Dynamics, t_start: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(telemetry times, published power): the latest measurement at each publication."""
    rng = np.random.default_rng(d.seed)
    tm = np.arange(t_start + d.phase_s, t_end, d.period_s)
    pm = true_power(tm, steps, d)
    if d.noise_w:
        pm = pm + rng.normal(0.0, d.noise_w, len(pm))
    pm = np.round(pm, 1)
    tt = np.arange(t_start, t_end, 1.0 / d.telemetry_hz)
    idx = np.searchsorted(tm, tt, side="right") - 1
    ok = idx >= 0
    return tt[ok], pm[idx[ok]]
