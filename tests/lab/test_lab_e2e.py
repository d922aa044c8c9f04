"""``bptctl pattern`` / ``record`` / ``report`` against an in-process daemon on the virtual
station whose module dynamics are known (activation delays and ramp in the sim config).

What the response is made of: the daemon's symmetric ramp limiter (30 kW/s per module by
default) feeds the module; the virtual module starts after its activation delay (one for
commands that discharge, one for the others) and ramps at its own rate. The sim ramp is
set below the daemon's, so the module's ramp is what the slope measures, and the
activation time is the module's delay plus what the station adds on top: the daemon's
first RPDOs carry only the first step of its own ramp, the module measurement goes out
every 50 ms (DC/DC TPDO event timer) and the telemetry samples it every 10 ms.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bptd import ctl
from bptd.config import Config
from bptd.lab import report
from bptd.lab.metrics import ModulePoint
from bptd.sim.module import efficiency

from .conftest import Lab, lab_config
from .test_report import assert_plot

CHARGE_DELAY_S = 0.2
DISCHARGE_DELAY_S = 0.6
SIM_RAMP_W_PER_S = 20000.0
#: activation time - configured delay, per step: the crossing is interpolated between the
#: module's measurements (every 50 ms), whose times are those of the telemetry that
#: carried them (10 ms later at most); the daemon's control tick (10 ms), its RPDO
#: inhibit (10 ms here, see conftest) and the virtual station's tick (5 ms) come on top
ACTIVATION_TOLERANCE_S = (-0.025, 0.060)
#: and on average over the steps
MEAN_ACTIVATION_TOLERANCE_S = 0.040
#: the 10-90 % slope of a ramp against the module's ramp rate
SLOPE_TOLERANCE = 0.05
#: the thesis's ramp rate (step / ramp time, the ramp's first and last steps included)
RAMP_RATE_TOLERANCE = 0.15
#: per-row efficiency tolerance on top of the measurement resolution (0.1 A, 0.1 V, 1 W)
EFFICIENCY_TOLERANCE = 0.0005


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def num(row: dict[str, str], key: str) -> float:
    return float(row[key]) if row[key] else math.nan


def expected_delay(from_w: float, to_w: float) -> float:
    """The virtual module's delay for a step: the first command that differs discharges
    when the step starts below zero, or from zero downwards."""
    return DISCHARGE_DELAY_S if from_w < 0 or (from_w == 0 and to_w < 0) else CHARGE_DELAY_S


def test_pattern_b_recovers_the_module_activation_delays_and_ramp(
    lab_station: Callable[[Config], Lab], reference_config: Config, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    lab = lab_station(lab_config(
        reference_config, activation_delay_s=CHARGE_DELAY_S,
        discharge_activation_delay_s=DISCHARGE_DELAY_S, ramp_w_per_s=SIM_RAMP_W_PER_S,
    ))  # fmt: skip
    lab.station.start_session("ccs", [1])
    out = tmp_path / "b"
    rc = ctl.main(lab.bptctl("pattern", "b", "connector=ccs", "interval_s=2.8", "steady=0.3",
                             "--output", str(out)))  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "| Step | From [kW] | To [kW] | Activation [ms]" in captured.out
    assert "step 9/9" in captured.err  # the progress lines
    meta = json.loads((out / "pattern.json").read_text())
    lo, hi = meta["params"]["min_w"], meta["params"]["max_w"]
    # the range defaults to the limits in force: one module at about 375 V
    assert lo == pytest.approx(-11000, abs=50) and hi == pytest.approx(10500, abs=50)
    rows = read_csv(out / "steps.csv")
    assert [(num(r, "from_w"), num(r, "to_w")) for r in rows[1:]] == [
        (0, hi), (hi, 0), (0, lo), (lo, 0), (0, lo), (lo, hi), (hi, lo), (lo, 0),
    ]  # fmt: skip
    errors = []
    for r in rows[1:]:
        f, t = num(r, "from_w"), num(r, "to_w")
        assert r["sync"] == "daemon" and num(r, "latency_s") < 0.05, r
        err = num(r, "activation_s") - expected_delay(f, t)
        errors.append(err)
        assert ACTIVATION_TOLERANCE_S[0] <= err <= ACTIVATION_TOLERANCE_S[1], (r, err)
        assert r["settled"] == "true", r
        assert num(r, "ramp_s") > 0 and num(r, "ramp_rate_w_per_s") > 0
        assert abs(num(r, "error_w")) <= 0.01 * abs(t) + 20, r
        if not (f > 0 > t):
            # charge -> discharge waits at zero for the discharge delay: not one ramp
            slope, rate = num(r, "slope_w_per_s"), num(r, "ramp_rate_w_per_s")
            assert slope == pytest.approx(SIM_RAMP_W_PER_S, rel=SLOPE_TOLERANCE), r
            # the thesis's ramp rate (step / ramp time) also has the ramp's start and end
            assert rate == pytest.approx(SIM_RAMP_W_PER_S, rel=RAMP_RATE_TOLERANCE), r
    assert abs(sum(errors) / len(errors)) <= MEAN_ACTIVATION_TOLERANCE_S, errors
    for name in ("response.png", "steps.png", "efficiency.png"):
        assert_plot(out / name)
    # the recording has the sync markers: every step's command_applied, received <= sent
    recording = read_csv(out / "recording.csv")
    steps = [r for r in recording if r["topic"] == "lab.step"]
    assert len(steps) == 9
    assert all(num(r, "received_mono") <= num(r, "sent_mono") for r in steps)
    assert any(r["topic"] == "module.1" and r["ac_power_w"] for r in recording)


def test_pattern_a_efficiency_matches_the_module_map(
    lab_station: Callable[[Config], Lab], reference_config: Config, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = lab_config(reference_config)  # the default module dynamics: 50 ms, 30 kW/s
    lab = lab_station(config)
    lab.station.start_session("ccs", [1])
    dirs = []
    for soc in (0.25, 0.85):  # two battery voltages, about 362 V and 392 V
        lab.station.call("sim", action="set_soc", connector="ccs", soc=soc)
        out = tmp_path / f"a-{soc}"
        rc = ctl.main(lab.bptctl("pattern", "a", "connector=ccs", "min_w=-10000",
                                 "max_w=10000", "step_w=5000", "interval_s=1",
                                 "--output", str(out)))  # fmt: skip
        assert rc == 0, capsys.readouterr().err
        dirs.append(out)
        rows = read_csv(out / "steps.csv")
        assert [num(r, "to_w") for r in rows] == [0, 5000, 10000, 5000, 0, -5000, -10000,
                                                 -5000, 0]  # fmt: skip
        # accuracy, precision, set-point linearity
        for r in rows:
            assert r["settled"] == "true", r
            assert abs(num(r, "error_w")) <= 0.01 * abs(num(r, "to_w")) + 20, r
            assert num(r, "precision_w") < 50, r
        summary = json.loads((out / "summary.json").read_text())[0]
        assert summary["linearity"]["slope"] == pytest.approx(1.0, abs=0.01)
        assert summary["linearity"]["r2"] > 0.9999
        # efficiency: what the virtual module's map says at the measured point
        points = read_csv(out / "efficiency.csv")
        assert {r["module"] for r in points} == {"1"}
        checked = 0
        for r in points:
            dc, ac, v, eff = (num(r, k) for k in ("dc_w", "ac_w", "voltage_v", "efficiency"))
            if num(r, "setpoint_w") == 0:
                assert math.isnan(eff), r
                continue
            want = efficiency(dc, v, config.sim.peak_efficiency)
            resolution = 0.05 / abs(dc / v) + 0.05 / v + 1.0 / abs(ac)
            assert eff == pytest.approx(want, abs=resolution + EFFICIENCY_TOLERANCE), r
            checked += 1
        assert checked == 6
        assert_plot(out / "response.png")
        assert_plot(out / "efficiency.png", min_bytes=10000)
    # both sweeps in one heatmap, one row per battery voltage (thesis figure 4.6)
    merged = tmp_path / "merged"
    assert ctl.main(["report", *map(str, dirs), "--output", str(merged)]) == 0
    points = [
        ModulePoint(r["module"], *(num(r, k) for k in ("voltage_v", "dc_w", "ac_w", "efficiency")))
        for r in read_csv(merged / "efficiency.csv")
    ]
    power, volts, grid = report.efficiency_grid(points)
    assert len(volts) == 2 and volts[1] - volts[0] > 20
    assert len(power) == 4 and not np.isnan(grid).any()
    assert_plot(merged / "efficiency.png")


def test_pattern_refuses_without_a_live_session(
    lab_station: Callable[[Config], Lab], reference_config: Config, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    lab = lab_station(lab_config(reference_config))
    out = tmp_path / "never"
    rc = ctl.main(lab.bptctl("pattern", "b", "connector=ccs", "--output", str(out)))
    assert rc == ctl.EXIT_REFUSED
    assert "not in energy_transfer" in capsys.readouterr().err
    assert not out.exists()
    # nothing was sent: no command reached the modules (whatever telemetry came meanwhile)
    applied = []
    for _ in range(200):
        m = lab.station.telemetry.recv(0.05)
        if m is None:
            break
        if m[0] == "event" and m[1].get("kind") == "command_applied":
            applied.append(m[1])
    assert applied == []
    rc = ctl.main(lab.bptctl("pattern", "b", "connector=nowhere"))
    assert rc == ctl.EXIT_REFUSED
    assert "invalid_argument" in capsys.readouterr().err


def test_ctrl_c_puts_the_setpoint_back_to_zero(
    lab_station: Callable[[Config], Lab], reference_config: Config, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    lab = lab_station(lab_config(reference_config))
    lab.station.start_session("ccs", [1])

    def interrupt_at_step_3(err: Any) -> Callable[[Any], None]:
        def progress(p: Any) -> None:
            if p.step == 3 and p.elapsed_s >= 2.6:  # 10 kW, reached
                raise KeyboardInterrupt

        return progress

    monkeypatch.setattr(ctl, "_progress_printer", interrupt_at_step_3)
    out = tmp_path / "a"
    rc = ctl.main(lab.bptctl("pattern", "a", "connector=ccs", "step_w=5000", "interval_s=1",
                             "--output", str(out)))  # fmt: skip
    assert rc == ctl.EXIT_INTERRUPTED
    assert "interrupted at step 3" in capsys.readouterr().err
    meta = json.loads((out / "pattern.json").read_text())
    assert meta["interrupted"] and meta["setpoint_restored"] and meta["steps_done"] == 3
    assert meta["notices"] == []  # its own setpoint 0 is not another client's
    msg = lab.station.wait("connector.ccs", lambda p: p["setpoint_w"] == 0
                           and p["power_w"] is not None and abs(p["power_w"]) < 50,
                           10.0, "setpoint 0 and no power")  # fmt: skip
    assert msg["state"] == "energy_transfer"  # the session goes on, at 0 W
    rows = read_csv(out / "steps.csv")  # the steps done are analysed
    assert [num(r, "to_w") for r in rows] == [0, 5000, 10000]


def test_record_writes_every_topic_with_both_timestamps(
    lab_station: Callable[[Config], Lab], reference_config: Config, tmp_path: Path,
) -> None:  # fmt: skip
    from bptd.lab.record import COLUMNS, load

    lab = lab_station(lab_config(reference_config))
    path = tmp_path / "rec.csv"
    assert ctl.main(lab.bptctl("record", "--output", str(path), "--duration", "1")) == 0
    rows = read_csv(path)
    assert tuple(rows[0]) == COLUMNS
    topics = {r["topic"] for r in rows}
    assert {"connector.ccs", "connector.chademo", "module.1", "module.2"} <= topics
    assert all(r["t"].endswith("Z") and num(r, "mono") > 0 for r in rows)
    rec = load(path)
    mono = rec.connectors["ccs"]["mono"]
    assert 50 <= len(mono) <= 150  # 100 Hz for a second
    assert all(b > a for a, b in itertools.pairwise(mono))
    assert set(rec.modules) == {"1", "2"}
