"""The metrics of thesis section 3.6 (after Zecchino et al.) from recorded arrays. Pure.

Per step (a setpoint command at ``t_cmd``, held until the next one at ``t_end``):

- *before* / *after*: the mean response over the steady window of the previous step /
  of this step (the last ``steady`` fraction of the step, default half);
- the *band*: ``max(band_fraction x |after - before|, band_min_w, 3 sigma)`` with sigma
  the standard deviation of the response in either steady window (noise and ripple);
- (iii) **activation time**: ``t_cmd`` (the command handed to the bus) until the first
  sample that has left the band around *before* in the direction of the step;
- (iv-v) **ramp time**: from there until the first sample inside the band around
  *after* ("the new value is reached"); **ramp rate** as in the thesis's tables:
  ``|after - before| / ramp time``; **slope**: the least-squares slope of the response
  between 10 % and 90 % of the step (the rate the power actually changes at, without the
  start and the end of the ramp);
- (vi) **accuracy**: ``after - setpoint`` (W, and % of the setpoint);
- (vii) **precision**: the standard deviation of the response in the steady window;
- **efficiency** per module and for the connector from the module AC and DC powers over
  the steady window: DC / AC when charging, AC / DC when discharging.

Over all steps, (ii) **set-point linearity**: the least-squares line of *after* against
the setpoint (slope, offset, R^2, the largest deviation from the line).

The response is the connector's DC power. Times come from the daemon's monotonic clock:
the response samples are telemetry messages (``station.telemetry_hz``), each carrying the
latest module measurement, so a time is late by up to one module measurement period plus
one telemetry period; see docs/lab.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bptd.lab.record import Command, Recording, Series

NAN = math.nan


@dataclass(frozen=True)
class Options:
    steady: float = 0.5  # the last fraction of a step that is its steady state
    band_fraction: float = 0.01  # of the step size
    band_min_w: float = 50.0
    efficiency_min_w: float = 200.0  # below this DC power (per module) no efficiency
    first_before_s: float = 1.0  # baseline of the first step: this long before it
    #: the module measurement period band crossings are interpolated over; None:
    #: estimated from the recording (the median time between new values), 0: none
    measurement_period_s: float | None = None

    def check(self) -> Options:
        if not 0.0 < self.steady <= 1.0:
            raise ValueError(f"steady must be in (0, 1], not {self.steady}")
        if not 0.0 < self.band_fraction < 0.5:
            raise ValueError(f"band_fraction must be in (0, 0.5), not {self.band_fraction}")
        if self.band_min_w < 0 or self.efficiency_min_w < 0:
            raise ValueError("band_min_w and efficiency_min_w must be >= 0")
        if self.measurement_period_s is not None and not self.measurement_period_s >= 0:
            raise ValueError("measurement_period_s must be >= 0")
        return self


@dataclass(frozen=True)
class Response:
    """Timing of one step response (seconds and watts; NaN when not measurable)."""

    before_w: float
    after_w: float
    band_w: float
    activation_s: float = NAN
    ramp_s: float = NAN
    ramp_rate_w_per_s: float = NAN
    slope_w_per_s: float = NAN
    precision_w: float = NAN
    leave_t: float = NAN
    arrive_t: float = NAN

    @property
    def delta_w(self) -> float:
        return self.after_w - self.before_w

    @property
    def total_s(self) -> float:
        return self.activation_s + self.ramp_s


@dataclass(frozen=True)
class ModulePoint:
    """One module over one step's steady window."""

    module: str
    voltage_v: float
    dc_w: float
    ac_w: float
    efficiency: float


@dataclass
class StepMetrics:
    index: int
    from_w: float
    to_w: float
    t_cmd: float
    t_end: float
    response: Response
    latency_s: float = NAN  # daemon: request handled -> RPDOs handed to the bus
    sync: str = "daemon"
    error_w: float = NAN
    error_pct: float = NAN
    settled: bool = False
    efficiency: float = NAN
    dc_w: float = NAN
    ac_w: float = NAN
    voltage_v: float = NAN
    modules: list[ModulePoint] = field(default_factory=list)
    linearity_dev_w: float = NAN
    limited_by: str = ""  # the daemon clamped the setpoint (its reply's ``limited_by``)

    @property
    def transition(self) -> bool:
        return math.isfinite(self.response.activation_s)


@dataclass(frozen=True)
class Linearity:
    slope: float = NAN
    offset_w: float = NAN
    r2: float = NAN
    max_dev_w: float = NAN
    points: int = 0


@dataclass
class Analysis:
    connector: str
    steps: list[StepMetrics]
    linearity: Linearity
    options: Options
    source: str = ""
    measurement_period_s: float = NAN  # what the band crossings were interpolated over

    def points(self) -> list[ModulePoint]:
        """Every module's efficiency point (for the heatmap)."""
        return [m for s in self.steps for m in s.modules if math.isfinite(m.efficiency)]


# ---------------------------------------------------------------------- pure helpers


def finite(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(t) & np.isfinite(v)
    return t[ok], v[ok]


def window(t: np.ndarray, v: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """The finite values with ``t0 <= t < t1``."""
    sel = (t >= t0) & (t < t1) & np.isfinite(v)
    return v[sel]


def first_changes(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The samples whose value differs from the one before (and the first): a measurement
    held over several telemetry periods counts once, at its first appearance."""
    if len(v) == 0:
        return t, v
    keep = np.ones(len(v), dtype=bool)
    keep[1:] = v[1:] != v[:-1]
    return t[keep], v[keep]


def efficiency(dc_w: float, ac_w: float, min_w: float = 0.0) -> float:
    """DC / AC when charging (DC > 0), AC / DC when discharging; NaN below ``min_w``."""
    if not (math.isfinite(dc_w) and math.isfinite(ac_w)) or abs(dc_w) < max(min_w, 1e-9):
        return NAN
    if dc_w > 0:
        return dc_w / ac_w if ac_w > 0 else NAN
    return ac_w / dc_w if ac_w < 0 else NAN


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if len(v) else NAN


def _std(v: np.ndarray) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else (0.0 if len(v) == 1 else NAN)


def measurement_period(t: np.ndarray, v: np.ndarray, longest_s: float = 1.0) -> float:
    """The period of the measurement behind ``v(t)``: the median time between new values
    (below ``longest_s``; a value held longer is a steady state, not a period)."""
    tt, _ = first_changes(*finite(np.asarray(t, dtype=float), np.asarray(v, dtype=float)))
    d = np.diff(tt)
    d = d[(d > 0) & (d < longest_s)]
    return float(np.median(d)) if len(d) else NAN


def _start(tt: np.ndarray, j: int, period: float) -> float:
    """When the measurement shown at new value ``j`` was taken, at the earliest: at the
    value before it, or one ``period`` before ``j`` when that value was held longer
    (an unchanged value does not show as new)."""
    t1 = float(tt[j])
    if j == 0:
        return t1
    t0 = float(tt[j - 1])
    if math.isfinite(period) and period > 0 and t1 - t0 > 1.5 * period:
        t0 = t1 - period
    return t0


def _fresh(tt: np.ndarray, a: int, period: float) -> bool:
    """New values ``a`` and ``a + 1`` are consecutive measurements."""
    if a < 0 or a + 1 >= len(tt):
        return False
    limit = 1.5 * period if math.isfinite(period) and period > 0 else math.inf
    return 0.0 < float(tt[a + 1] - tt[a]) <= limit


def _crossing(
    tt: np.ndarray, pp: np.ndarray, j: int, level: float, period: float, leaving: bool
) -> float:
    """When ``p`` crossed ``level`` between new values ``j - 1`` and ``j``.

    A ramp's corner (where it starts, or reaches the new value) usually lies between two
    measurements, so the crossing is found along the ramp itself: back from ``j`` with the
    slope of the two measurements after it when leaving, on from ``j - 1`` with the slope
    of the two before it when arriving; else linearly between ``j - 1`` and ``j``."""
    t1, p1 = float(tt[j]), float(pp[j])
    if j == 0:
        return t1
    t0, p0 = _start(tt, j, period), float(pp[j - 1])
    direction = 1.0 if p1 > p0 else -1.0
    a = j if leaving else j - 2
    if _fresh(tt, a, period) and (not leaving or j + 1 < len(pp)):
        slope = float(pp[a + 1] - pp[a]) / float(tt[a + 1] - tt[a])
        if slope * direction > 0:
            if leaving:
                return min(t1, max(t0, t1 - (p1 - level) / slope))
            return min(t1, max(t0, float(tt[j - 1]) + (level - p0) / slope))
    if p1 == p0 or t1 <= t0:
        return t1
    frac = min(1.0, max(0.0, (level - p0) / (p1 - p0)))
    return t0 + frac * (t1 - t0)


def step_response(
    t: np.ndarray,
    p: np.ndarray,
    t_cmd: float,
    t_end: float,
    before: tuple[float, float],
    steady: tuple[float, float],
    band_fraction: float = 0.01,
    band_min_w: float = 50.0,
    period_s: float = NAN,
) -> Response:
    """Activation, ramp, ramp rate, slope and precision of the response ``p(t)`` to a
    command at ``t_cmd`` (see the module docstring). ``before`` / ``steady`` are the
    windows of the levels before and after; ``period_s`` the measurement period the band
    crossings are interpolated over (NaN: at the first sample beyond, no interpolation)."""
    t, p = finite(np.asarray(t, dtype=float), np.asarray(p, dtype=float))
    pre = window(t, p, *before)
    post = window(t, p, *steady)
    before_w, after_w = _mean(pre), _mean(post)
    sigma = max(_std(pre) if len(pre) > 1 else 0.0, _std(post) if len(post) > 1 else 0.0)
    delta = after_w - before_w
    if not math.isfinite(delta):
        return Response(before_w, after_w, NAN, precision_w=_std(post))
    band = max(band_fraction * abs(delta), band_min_w, 3.0 * sigma)
    base = Response(before_w, after_w, band, precision_w=_std(post))
    if abs(delta) <= 2.0 * band:
        return base  # no transition to time
    sign = 1.0 if delta > 0 else -1.0
    tt, pp = first_changes(t[t < t_end], p[t < t_end])
    after_cmd = tt > t_cmd
    out = np.nonzero(after_cmd & ((pp - before_w) * sign > band))[0]
    if not len(out):
        return base
    j = int(out[0])
    leave = max(t_cmd, _crossing(tt, pp, j, before_w + sign * band, period_s, True))
    inside = np.nonzero(np.abs(pp[j:] - after_w) <= band)[0]
    arrive = NAN
    if len(inside):
        k = j + int(inside[0])
        edge = after_w - sign * band if (pp[k - 1] - after_w) * sign < 0 else after_w + sign * band
        arrive = max(leave, _crossing(tt, pp, k, edge, period_s, False))
    ramp = arrive - leave
    rate = abs(delta) / ramp if ramp > 0 else NAN
    sel = t > t_cmd
    return Response(
        before_w,
        after_w,
        band,
        activation_s=leave - t_cmd,
        ramp_s=ramp,
        ramp_rate_w_per_s=rate,
        slope_w_per_s=_slope(t[sel], p[sel], before_w, delta),
        precision_w=base.precision_w,
        leave_t=leave,
        arrive_t=arrive,
    )


def _slope(t: np.ndarray, p: np.ndarray, before: float, delta: float) -> float:
    """|dP/dt| fitted between 10 % and 90 % of the step (first appearances only)."""
    frac = (p - before) / delta
    i10 = np.nonzero(frac >= 0.1)[0]
    i90 = np.nonzero(frac >= 0.9)[0]
    if not len(i10) or not len(i90) or i90[0] < i10[0]:
        return NAN
    a, b = int(i10[0]), int(i90[0])
    tt, pp = first_changes(t[a : b + 1], p[a : b + 1])
    if len(tt) >= 3 and tt[-1] > tt[0]:
        slope = float(np.polyfit(tt - tt[0], pp, 1)[0])
        return abs(slope)
    dt = float(t[b] - t[a])
    return abs(float(p[b] - p[a])) / dt if dt > 0 else NAN


def linearity(setpoints: Sequence[float], measured: Sequence[float]) -> Linearity:
    """Least-squares line of the measured steady values against the setpoints."""
    x = np.asarray(setpoints, dtype=float)
    y = np.asarray(measured, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(np.unique(x)) < 2:
        return Linearity(points=len(x))
    slope, offset = np.polyfit(x, y, 1)
    resid = y - (slope * x + offset)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else NAN
    return Linearity(float(slope), float(offset), r2, float(np.max(np.abs(resid))), len(x))


# ---------------------------------------------------------------------- a recording


def step_commands(rec: Recording, connector: str) -> list[Command]:
    """The setpoint steps of ``connector``: the pattern's own ``lab.step`` rows when the
    recording has them, else every ``setpoint`` command the daemon applied."""
    steps = [s for s in rec.steps if s.connector == connector]
    if steps:
        return steps
    return [
        c
        for c in rec.commands
        if c.command == "setpoint" and c.connector == connector and math.isfinite(c.power_w)
    ]


def _owned(series: Series, connector: str, t0: float, t1: float) -> bool:
    t = series["mono"]
    sel = np.nonzero((t >= t0) & (t < t1))[0]
    return bool(len(sel)) and sum(series.owner[i] == connector for i in sel) * 2 > len(sel)


def _setpoint_at(series: Series, t: float) -> float:
    mono, sp = series["mono"], series["setpoint_w"]
    i = int(np.searchsorted(mono, t)) - 1
    while i >= 0:
        if math.isfinite(sp[i]):
            return float(sp[i])
        i -= 1
    return NAN


def analyse(rec: Recording, connector: str, options: Options | None = None) -> Analysis:
    """Every step of ``connector`` in the recording, with the linearity over them."""
    opt = (options or Options()).check()
    if connector not in rec.connectors:
        known = ", ".join(sorted(rec.connectors)) or "none"
        where = rec.source or "the recording"
        raise ValueError(f"no telemetry of connector {connector!r} in {where} "
                         f"(connectors: {known})")  # fmt: skip
    conn = rec.connectors[connector]
    t_all, p_all = conn["mono"], conn["power_w"]
    commands = step_commands(rec, connector)
    period = opt.measurement_period_s
    if period is None:
        period = measurement_period(t_all, p_all)
    end_of_data = float(t_all[-1]) if len(t_all) else NAN
    steps: list[StepMetrics] = []
    for k, cmd in enumerate(commands):
        t_cmd = cmd.at
        t_end = commands[k + 1].at if k + 1 < len(commands) else end_of_data
        if not (math.isfinite(t_cmd) and math.isfinite(t_end)) or t_end <= t_cmd:
            continue
        if k == 0:
            before = (t_cmd - opt.first_before_s, t_cmd)
            from_w = _setpoint_at(conn, t_cmd)
        else:
            prev = commands[k - 1].at
            before = (t_cmd - opt.steady * (t_cmd - prev), t_cmd)
            from_w = commands[k - 1].power_w
        steady = (t_end - opt.steady * (t_end - t_cmd), t_end)
        resp = step_response(t_all, p_all, t_cmd, t_end, before, steady,
                             opt.band_fraction, opt.band_min_w, period or NAN)  # fmt: skip
        to_w = cmd.power_w
        latency = cmd.sent_mono - cmd.received_mono
        m = StepMetrics(cmd.step or k + 1, from_w, to_w, t_cmd, t_end, resp,
                        latency_s=latency, sync=cmd.sync)  # fmt: skip
        if cmd.step is not None and cmd.args.get("limited_by"):
            m.limited_by = str(cmd.args["limited_by"])
        if math.isfinite(resp.after_w) and math.isfinite(to_w):
            m.error_w = resp.after_w - to_w
            m.error_pct = 100.0 * m.error_w / abs(to_w) if to_w else NAN
        arrived = resp.arrive_t if math.isfinite(resp.arrive_t) else NAN
        if resp.band_w and math.isfinite(resp.band_w):
            if abs(resp.delta_w) <= 2.0 * resp.band_w:
                m.settled = True  # nothing to wait for
            else:
                m.settled = math.isfinite(arrived) and arrived <= steady[0]
        _efficiency(rec, connector, m, steady, opt)
        steps.append(m)
    lin = linearity([s.to_w for s in steps if s.settled],
                    [s.response.after_w for s in steps if s.settled])  # fmt: skip
    if math.isfinite(lin.slope):
        for s in steps:
            if s.settled:
                s.linearity_dev_w = s.response.after_w - (lin.slope * s.to_w + lin.offset_w)
    return Analysis(connector, steps, lin, opt, rec.source, period or NAN)


def _efficiency(
    rec: Recording, connector: str, m: StepMetrics, steady: tuple[float, float], opt: Options
) -> None:
    dc_total = ac_total = 0.0
    volts: list[float] = []
    for name, series in rec.modules.items():
        if not _owned(series, connector, *steady):
            continue
        t = series["mono"]
        dc = _mean(window(t, series["power_w"], *steady))
        ac = _mean(window(t, series["ac_power_w"], *steady))
        v = _mean(window(t, series["voltage_v"], *steady))
        if not (math.isfinite(dc) and math.isfinite(ac)):
            continue
        m.modules.append(ModulePoint(name, v, dc, ac, efficiency(dc, ac, opt.efficiency_min_w)))
        dc_total += dc
        ac_total += ac
        if math.isfinite(v):
            volts.append(v)
    if m.modules:
        m.dc_w, m.ac_w = dc_total, ac_total
        m.voltage_v = _mean(np.asarray(volts)) if volts else NAN
        m.efficiency = efficiency(dc_total, ac_total, opt.efficiency_min_w * len(m.modules))
