"""The report files: steps CSV, Markdown in the thesis's layout, PNG plots with content."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from bptd.lab import metrics, report
from bptd.lab.metrics import ModulePoint
from bptd.lab.record import load

from .test_metrics import synthetic_recording


def assert_plot(path: Path, min_bytes: int = 15000) -> None:
    """A PNG that shows something: big enough and not one flat colour."""
    assert path.is_file(), path
    assert path.stat().st_size >= min_bytes, (path, path.stat().st_size)
    pixels = image.imread(path)[..., :3]
    assert float(np.var(pixels)) > 0.005, path
    # more than a blank frame: a fair share of the pixels is not background
    assert float(np.mean(np.any(pixels < 0.9, axis=-1))) > 0.02, path


def test_report_files_of_a_recording(tmp_path: Path) -> None:
    synthetic_recording(tmp_path / "rec.csv")
    rec = load(tmp_path / "rec.csv")
    a = metrics.analyse(rec, "ccs")
    files = report.write_report([a], [rec], tmp_path / "out", "Synthetic")
    assert set(files) == {"steps.csv", "efficiency.csv", "report.md", "summary.json",
                          "response.png", "steps.png", "efficiency.png"}  # fmt: skip
    with files["steps.csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == report.STEP_COLUMNS
    assert [float(r["to_w"]) for r in rows] == [0.0, 8000.0, -6000.0, 4000.0, 0.0]
    assert rows[1]["activation_s"] and float(rows[1]["activation_s"]) == pytest.approx(
        0.25 + 80 / 20000, abs=0.015
    )
    assert rows[1]["t"].startswith("2025-03-01T10:00:0")
    with files["efficiency.csv"].open() as f:
        eff = list(csv.DictReader(f))
    assert {r["module"] for r in eff} == {"1", "2"}
    md = files["report.md"].read_text()
    assert "| Step | From [kW] | To [kW] | Activation [ms] | Ramp [ms] | Total [ms] " in md
    assert "| 2 | 0 | 8 | 2" in md  # step 2: 0 -> 8 kW, activation 25x ms
    assert "Set-point linearity over 5 settled steps" in md
    for name in ("response.png", "steps.png", "efficiency.png"):
        assert_plot(files[name])


def test_efficiency_grid_one_cell_per_operating_point() -> None:
    points = [
        ModulePoint("1", v + dv, p + dp, 0.0, eff)
        for v, dv in ((360.0, 0.4), (400.0, -0.3))
        for p, dp, eff in ((-5000.0, 20.0, 0.94), (2500.0, -8.0, 0.93), (5000.0, 3.0, 0.95))
    ]
    pw, vv, grid = report.efficiency_grid(points)
    assert grid.shape == (2, 3)
    assert pw == pytest.approx([-4980.0, 2492.0, 5003.0])
    assert vv == pytest.approx([360.4, 399.7])
    assert grid[1] == pytest.approx([0.94, 0.93, 0.95])
    assert report.efficiency_grid([]) is None


def test_several_recordings_make_one_table_and_one_heatmap(tmp_path: Path) -> None:
    for name, eff in (("a", 0.95), ("b", 0.9)):
        synthetic_recording(tmp_path / f"{name}.csv", eff)
    recs = [load(tmp_path / f"{n}.csv") for n in ("a", "b")]
    analyses = [metrics.analyse(r, "ccs") for r in recs]
    files = report.write_report(analyses, recs, tmp_path / "both")
    with files["steps.csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {r["source"] for r in rows} == {str(r.source) for r in recs}
    assert {"response-1.png", "response-2.png", "efficiency.png"} <= set(files)
    assert_plot(files["efficiency.png"])
