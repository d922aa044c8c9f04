"""Symmetric ramp limiter with its state in arrays (one element per module or connector)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from bptd.limits import backend as _backend


class RampLimiter:
    """Rate limiter for ``n`` setpoints, the same rate up and down in both directions.

    The rate is in W/s (default 30 kW/s, the BMPU rating). ``step`` works on currents when
    given ``voltage_v`` (rate / max(voltage, ``min_voltage_v``) A/s), on powers otherwise. A
    sign change stops at exactly zero for one step before going on in the new direction.
    ``safety_stop`` (bool or per-element mask) sets the output to zero at once. ``lower`` /
    ``upper`` clip the result after the ramp: a limit that falls applies at once.
    """

    def __init__(
        self,
        n: int,
        rate_w_per_s: ArrayLike = 30_000.0,
        *,
        min_voltage_v: float = 150.0,
        backend: str = "auto",
    ) -> None:
        if min_voltage_v <= 0:
            raise ValueError("min_voltage_v must be > 0")
        self._k = _backend.select(backend)
        self.value = np.zeros(n)
        self.rate_w_per_s = np.empty(n)
        self.set_rate(rate_w_per_s)
        self.min_voltage_v = float(min_voltage_v)
        self._ones = np.ones(n)
        self._stop = np.zeros(n)
        self._target = np.zeros(n)
        self._volt = np.zeros(n)

    def set_rate(self, rate_w_per_s: ArrayLike) -> None:
        rate = np.broadcast_to(np.asarray(rate_w_per_s, dtype=np.float64), self.value.shape)
        if not np.all(rate >= 0):
            raise ValueError("ramp rates must be >= 0")
        self.rate_w_per_s[:] = rate

    def reset(self, value: ArrayLike = 0.0) -> None:
        self.value[:] = value

    def step(
        self,
        target: ArrayLike,
        dt_s: float,
        *,
        voltage_v: ArrayLike | None = None,
        safety_stop: bool | ArrayLike = False,
        lower: ArrayLike | None = None,
        upper: ArrayLike | None = None,
    ) -> np.ndarray:
        """Advance by ``dt_s`` toward ``target``; returns the state array (reused)."""
        self._target[:] = target
        self._stop[:] = safety_stop
        if voltage_v is None:
            volt, vmin = self._ones, 1.0
        else:
            self._volt[:] = voltage_v
            volt, vmin = self._volt, self.min_voltage_v
        dt = float(dt_s) if dt_s > 0 else 0.0
        self._k.ramp_step(self.value, self._target, self.rate_w_per_s, volt, vmin, dt, self._stop)
        if upper is not None:
            np.minimum(self.value, upper, out=self.value)
        if lower is not None:
            np.maximum(self.value, lower, out=self.value)
        return self.value
