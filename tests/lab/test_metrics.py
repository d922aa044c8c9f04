"""The metrics on synthetic signals with known activation delay, ramp and efficiency."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bptd.lab import metrics
from bptd.lab.metrics import (
    efficiency,
    first_changes,
    linearity,
    measurement_period,
    step_response,
)
from bptd.lab.record import load, write_rows

from .synth import Dynamics, measured

#: one telemetry period (10 ms) plus rounding: what the interpolated band crossings of a
#: linear ramp may be off by
TIME_TOLERANCE_S = 0.015


@pytest.mark.parametrize("phase", [0.0, 0.013, 0.029, 0.047])
@pytest.mark.parametrize(
    ("delay", "rate", "p0", "p1"),
    [(0.3, 20000.0, 0.0, 10500.0), (1.0, 12000.0, 0.0, -11000.0),
     (0.08, 30000.0, 10000.0, -10000.0), (0.15, 25000.0, -11000.0, 0.0)],
)  # fmt: skip
def test_activation_ramp_and_slope_of_a_delayed_ramp(
    phase: float, delay: float, rate: float, p0: float, p1: float
) -> None:
    d = Dynamics(delay_s=delay, rate_w_per_s=rate, phase_s=phase)
    # the first level starts at 0 W in the synthetic module: let it settle before t_cmd
    t, p = measured([(-5.0, p0), (2.0, p1)], 6.0, d, t_start=-5.0 + delay + 2.0)
    period = measurement_period(t, p)
    assert period == pytest.approx(0.05, abs=0.011)
    r = step_response(t, p, 2.0, 6.0, (1.0, 2.0), (4.5, 6.0), period_s=period)
    band = 0.01 * abs(p1 - p0)
    assert r.band_w == pytest.approx(band)
    assert r.before_w == pytest.approx(p0) and r.after_w == pytest.approx(p1)
    # activation: the response leaves the band band/rate after it starts moving
    assert r.activation_s == pytest.approx(delay + band / rate, abs=TIME_TOLERANCE_S)
    assert r.ramp_s == pytest.approx((abs(p1 - p0) - 2 * band) / rate, abs=TIME_TOLERANCE_S)
    assert r.slope_w_per_s == pytest.approx(rate, rel=0.02)
    assert r.ramp_rate_w_per_s == pytest.approx(abs(p1 - p0) / r.ramp_s)
    assert r.total_s == pytest.approx(r.activation_s + r.ramp_s)
    assert r.precision_w == pytest.approx(0.0, abs=1e-6)


def test_without_interpolation_the_first_sample_beyond_is_late_by_up_to_a_period() -> None:
    d = Dynamics(delay_s=0.3, rate_w_per_s=20000.0, phase_s=0.031)
    t, p = measured([(0.0, 0.0), (2.0, 10000.0)], 6.0, d)
    r = step_response(t, p, 2.0, 6.0, (1.0, 2.0), (4.5, 6.0))  # no period: no interpolation
    exact = 0.3 + 100.0 / 20000.0
    assert exact <= r.activation_s <= exact + 0.05 + 0.011


def test_noise_widens_the_band_and_is_the_precision() -> None:
    d = Dynamics(delay_s=0.5, rate_w_per_s=15000.0, noise_w=40.0, seed=7)
    t, p = measured([(0.0, 0.0), (3.0, 8000.0)], 8.0, d)
    r = step_response(t, p, 3.0, 8.0, (2.0, 3.0), (6.0, 8.0),
                      period_s=measurement_period(t, p))  # fmt: skip
    assert r.band_w > 3 * 30.0  # 3 sigma, above 1 % of the step
    assert r.activation_s == pytest.approx(0.5 + r.band_w / 15000.0, abs=0.03)
    assert r.precision_w == pytest.approx(40.0, rel=0.35)
    assert r.after_w == pytest.approx(8000.0, abs=20.0)


def test_no_transition_no_times() -> None:
    t = np.arange(0.0, 4.0, 0.01)
    p = np.full_like(t, 5000.0)
    r = step_response(t, p, 2.0, 4.0, (1.0, 2.0), (3.0, 4.0))
    assert math.isnan(r.activation_s) and math.isnan(r.ramp_s)
    assert r.after_w == 5000.0 and r.precision_w == 0.0


def test_a_response_that_never_arrives_has_no_ramp_time() -> None:
    d = Dynamics(delay_s=0.2, rate_w_per_s=2000.0)
    t, p = measured([(0.0, 0.0), (1.0, 10000.0)], 4.0, d)
    # the "steady" window is still on the ramp: the response leaves but never settles there
    r = step_response(t, p, 1.0, 4.0, (0.5, 1.0), (3.9, 4.0), period_s=0.05)
    assert r.activation_s == pytest.approx(0.2 + r.band_w / 2000.0, abs=TIME_TOLERANCE_S)


def test_efficiency_by_direction() -> None:
    assert efficiency(9500.0, 10000.0) == pytest.approx(0.95)  # charging: DC / AC
    assert efficiency(-10000.0, -9500.0) == pytest.approx(0.95)  # discharging: AC / DC
    assert math.isnan(efficiency(100.0, 110.0, min_w=200.0))
    assert math.isnan(efficiency(5000.0, -5000.0))
    assert math.isnan(efficiency(math.nan, 1.0))


def test_linearity() -> None:
    x = [-10000.0, -5000.0, 0.0, 5000.0, 10000.0]
    y = [0.98 * v + 30.0 for v in x]
    lin = linearity(x, y)
    assert (lin.slope, lin.offset_w, lin.r2) == pytest.approx((0.98, 30.0, 1.0))
    assert lin.max_dev_w == pytest.approx(0.0, abs=1e-6) and lin.points == 5
    y[2] += 100.0
    assert linearity(x, y).max_dev_w == pytest.approx(80.0)
    assert math.isnan(linearity([1.0, 1.0], [1.0, 2.0]).slope)


def test_first_changes_and_period() -> None:
    t = np.arange(0.0, 1.0, 0.01)
    v = np.floor(t / 0.05)  # a new value every 50 ms
    tt, vv = first_changes(t, v)
    assert len(tt) == 20 and list(vv) == list(range(20))
    assert measurement_period(t, v) == pytest.approx(0.05)


def synthetic_recording(path: Path, eff: float = 0.95) -> list[tuple[float, float]]:
    """A two-module session through a few steps, with command_applied markers."""
    d = Dynamics(delay_s=0.25, rate_w_per_s=20000.0, phase_s=0.02)
    steps = [(1.0, 0.0), (3.0, 8000.0), (5.0, -6000.0), (7.0, 4000.0), (9.0, 0.0)]
    t, p = measured(steps, 11.0, d)
    msgs = []
    for ti, pi in zip(t, p, strict=True):
        sp = [w for tc, w in steps if tc <= ti][-1] if ti >= 1.0 else 0.0
        msgs.append(("connector.ccs", {
            "connector": "ccs", "state": "energy_transfer", "setpoint_w": sp, "power_w": pi,
            "voltage_v": 400.0, "current_a": pi / 400, "modules": [1, 2], "mono": ti,
            "t": "2025-03-01T10:00:00.000Z", "limits": {"charge_power_w": 21000.0},
        }))  # fmt: skip
        for n in (1, 2):
            dc = pi / 2
            ac = dc / eff if dc >= 0 else dc * eff
            msgs.append((f"module.{n}", {
                "module": n, "connector": "ccs", "voltage_v": 400.0 + n, "current_a": dc / 400,
                "power_w": dc, "ac_power_w": ac, "mono": ti + 1e-5,
            }))  # fmt: skip
    for tc, w in steps:
        msgs.append(("event", {
            "kind": "command_applied", "command": "setpoint", "connector": "ccs",
            "args": {"connector": "ccs", "power_w": w}, "received_mono": tc - 0.0004,
            "sent_mono": tc, "mono": tc,
        }))  # fmt: skip
    msgs.append(("event", {"kind": "command_applied", "command": "setpoint",
                           "connector": "chademo", "args": {"power_w": 1.0},
                           "received_mono": 4.0, "sent_mono": 4.0, "mono": 4.0}))  # fmt: skip
    msgs.sort(key=lambda m: m[1]["mono"])
    write_rows(path, msgs)
    return steps


def test_analyse_a_recording(tmp_path: Path) -> None:
    steps = synthetic_recording(tmp_path / "rec.csv")
    rec = load(tmp_path / "rec.csv")
    assert set(rec.connectors) == {"ccs"} and list(rec.modules) == ["1", "2"]
    a = metrics.analyse(rec, "ccs")
    assert [s.to_w for s in a.steps] == [w for _, w in steps]  # chademo's command is not ours
    assert [s.from_w for s in a.steps[1:]] == [w for _, w in steps[:-1]]
    assert a.measurement_period_s == pytest.approx(0.05, abs=0.011)
    for s in a.steps[1:]:
        band = s.response.band_w
        assert s.response.activation_s == pytest.approx(0.25 + band / 20000.0,
                                                        abs=TIME_TOLERANCE_S)  # fmt: skip
        # a 4 kW step is four measurements long: one 10 ms telemetry slip is 8 %
        assert s.response.slope_w_per_s == pytest.approx(20000.0, rel=0.1)
        assert s.latency_s == pytest.approx(0.0004)
        assert s.settled and s.error_w == pytest.approx(0.0, abs=1.0)
    assert math.isnan(a.steps[0].response.activation_s)  # 0 -> 0
    assert a.linearity.slope == pytest.approx(1.0, abs=1e-3) and a.linearity.points == 5
    for s in a.steps:
        if s.to_w:
            assert s.efficiency == pytest.approx(0.95, abs=1e-3)
            assert [m.module for m in s.modules] == ["1", "2"]
            assert all(m.efficiency == pytest.approx(0.95, abs=1e-3) for m in s.modules)
            assert s.voltage_v == pytest.approx(401.5)
        else:
            assert math.isnan(s.efficiency)  # no efficiency at 0 W
    with pytest.raises(ValueError, match="connector 'x'"):
        metrics.analyse(rec, "x")


def test_pattern_steps_take_precedence_and_fall_back_to_the_client_clock(tmp_path: Path) -> None:
    synthetic_recording(tmp_path / "rec.csv")
    from bptd.lab.record import RecordWriter

    # a recording with lab.step rows: those are the steps (here: two, one without marker)
    with RecordWriter(tmp_path / "steps.csv") as w:
        for topic, payload in [("connector.ccs", {"mono": 0.0, "power_w": 0.0}),
                               ("connector.ccs", {"mono": 9.0, "power_w": 5.0})]:  # fmt: skip
            w.write(topic, payload)
        w.row({"mono": 1.0, "topic": "lab.step", "name": "ccs", "step": 1, "setpoint_w": 0.0,
               "received_mono": 1.2, "sent_mono": 1.3, "sync": "daemon"})  # fmt: skip
        w.row({"mono": 4.0, "topic": "lab.step", "name": "ccs", "step": 2,
               "setpoint_w": 5.0, "sync": "client"})  # fmt: skip
    a = metrics.analyse(load(tmp_path / "steps.csv"), "ccs")
    assert [(s.index, s.to_w, s.t_cmd, s.sync) for s in a.steps] == [
        (1, 0.0, 1.3, "daemon"), (2, 5.0, 4.0, "client"),
    ]  # fmt: skip
