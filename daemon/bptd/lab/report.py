"""The results of an analysis: per-step CSV, efficiency CSV, a Markdown report with the
thesis's table layout (tables 4.2-4.8), and PNG plots (matplotlib, Agg backend):

- ``response.png``: setpoint, DC and AC power over time, with every step's activation
  and arrival marked;
- ``steps.png``: one panel per transition, aligned on the command (like the
  oscilloscope captures of thesis figure 3.10);
- ``efficiency.png``: module efficiency over DC voltage x DC power (thesis figure 4.6).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bptd.lab.metrics import Analysis, ModulePoint, StepMetrics
from bptd.lab.record import Recording

STEP_COLUMNS = (
    "step", "t", "from_w", "to_w", "activation_s", "ramp_s", "total_s",
    "ramp_rate_w_per_s", "slope_w_per_s", "before_w", "after_w", "band_w", "error_w",
    "error_pct", "precision_w", "linearity_dev_w", "settled", "latency_s", "sync",
    "voltage_v", "dc_w", "ac_w", "efficiency", "limited_by",
)  # fmt: skip
EFFICIENCY_COLUMNS = ("step", "setpoint_w", "module", "voltage_v", "dc_w", "ac_w", "efficiency")
MAX_STEP_PANELS = 16
POWER_BINS_W = (250.0, 500.0, 1000.0, 2000.0, 5000.0)
VOLTAGE_BINS_V = (5.0, 10.0, 20.0, 50.0, 100.0)


def _num(value: float, digits: int = 6) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{digits}g}"


def wall_time(rec: Recording | None, mono: float) -> str:
    """ISO 8601 UTC wall time of a daemon ``mono`` time, from the recording's origin."""
    if rec is None or rec.origin is None or not math.isfinite(mono):
        return ""
    m0, t0 = rec.origin
    try:
        base = dt.datetime.fromisoformat(t0.replace("Z", "+00:00"))
    except ValueError:
        return ""
    t = base + dt.timedelta(seconds=mono - m0)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def step_row(s: StepMetrics, rec: Recording | None = None) -> dict[str, str]:
    r = s.response
    return {
        "step": str(s.index),
        "t": wall_time(rec, s.t_cmd),
        "from_w": _num(s.from_w),
        "to_w": _num(s.to_w),
        "activation_s": _num(r.activation_s),
        "ramp_s": _num(r.ramp_s),
        "total_s": _num(r.total_s),
        "ramp_rate_w_per_s": _num(r.ramp_rate_w_per_s),
        "slope_w_per_s": _num(r.slope_w_per_s),
        "before_w": _num(r.before_w),
        "after_w": _num(r.after_w),
        "band_w": _num(r.band_w),
        "error_w": _num(s.error_w),
        "error_pct": _num(s.error_pct),
        "precision_w": _num(r.precision_w),
        "linearity_dev_w": _num(s.linearity_dev_w),
        "settled": "true" if s.settled else "false",
        "latency_s": _num(s.latency_s),
        "sync": s.sync,
        "voltage_v": _num(s.voltage_v),
        "dc_w": _num(s.dc_w),
        "ac_w": _num(s.ac_w),
        "efficiency": _num(s.efficiency),
        "limited_by": s.limited_by,
    }


def write_steps_csv(path: Path, analyses: Sequence[Analysis], recs: Sequence[Recording | None]
                    ) -> None:  # fmt: skip
    many = len(analyses) > 1
    cols = (("source",) if many else ()) + STEP_COLUMNS
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for a, rec in zip(analyses, recs, strict=True):
            for s in a.steps:
                row = step_row(s, rec)
                if many:
                    row["source"] = a.source
                w.writerow(row)


def write_efficiency_csv(path: Path, analyses: Sequence[Analysis]) -> None:
    many = len(analyses) > 1
    cols = (("source",) if many else ()) + EFFICIENCY_COLUMNS
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for a in analyses:
            for s in a.steps:
                for m in s.modules:
                    row = {
                        "step": str(s.index),
                        "setpoint_w": _num(s.to_w),
                        "module": m.module,
                        "voltage_v": _num(m.voltage_v),
                        "dc_w": _num(m.dc_w),
                        "ac_w": _num(m.ac_w),
                        "efficiency": _num(m.efficiency),
                    }
                    if many:
                        row["source"] = a.source
                    w.writerow(row)


# ---------------------------------------------------------------------- Markdown


def _kw(w: float, digits: int = 2) -> str:
    return "-" if not math.isfinite(w) else f"{w / 1000:.{digits}f}".rstrip("0").rstrip(".")


def _ms(s: float) -> str:
    return "-" if not math.isfinite(s) else f"{s * 1000:.0f}"


def _cell(value: float, fmt: str) -> str:
    return "-" if not math.isfinite(value) else format(value, fmt)


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def summary(a: Analysis) -> dict[str, Any]:
    """Averages over the transitions and the linearity, as plain numbers (NaN -> None)."""
    trans = [s for s in a.steps if s.transition]

    def clean(x: float) -> float | None:
        return None if not math.isfinite(x) else round(x, 6)

    eff = [s.efficiency for s in a.steps]
    return {
        "connector": a.connector,
        "steps": len(a.steps),
        "transitions": len(trans),
        "mean_activation_s": clean(_mean([s.response.activation_s for s in trans])),
        "max_activation_s": clean(max((s.response.activation_s for s in trans), default=math.nan)),
        "mean_ramp_s": clean(_mean([s.response.ramp_s for s in trans])),
        "mean_ramp_rate_w_per_s": clean(_mean([s.response.ramp_rate_w_per_s for s in trans])),
        "mean_slope_w_per_s": clean(_mean([s.response.slope_w_per_s for s in trans])),
        "mean_abs_error_w": clean(_mean([abs(s.error_w) for s in a.steps if s.settled])),
        "mean_precision_w": clean(_mean([s.response.precision_w for s in a.steps if s.settled])),
        "linearity": {
            "slope": clean(a.linearity.slope),
            "offset_w": clean(a.linearity.offset_w),
            "r2": clean(a.linearity.r2),
            "max_dev_w": clean(a.linearity.max_dev_w),
            "points": a.linearity.points,
        },
        "efficiency_min": clean(min((e for e in eff if math.isfinite(e)), default=math.nan)),
        "efficiency_max": clean(max((e for e in eff if math.isfinite(e)), default=math.nan)),
        "sync": sorted({s.sync for s in a.steps}),
    }


def markdown(a: Analysis, title: str = "", notes: Sequence[str] = ()) -> str:
    """The report of one analysis: the thesis's step table plus the other metrics."""
    o = a.options
    lines = [f"# {title or 'bptd lab report'}", ""]
    if a.source:
        lines += [f"Recording: `{a.source}`", ""]
    syncs = sorted({s.sync for s in a.steps})
    clock = ("the command handed to the bus (the daemon's command_applied marker)"
             if syncs == ["daemon"] else
             "the command handed to the bus where the daemon marked it, else this client's "
             "request (same host only)")  # fmt: skip
    period = a.measurement_period_s
    lines += [f"Connector `{a.connector}`; response: the connector's DC power from its module "
              f"measurements; times from {clock}. Module measurement period "
              f"{_cell(period * 1000, '.0f')} ms (estimated; band crossings are interpolated "
              "over it).", ""]  # fmt: skip
    lines += [*notes, ""] if notes else []
    lines += [
        "## Activation and ramp times (thesis section 3.6, metrics iii-v; tables 4.2-4.8)",
        "",
        "| Step | From [kW] | To [kW] | Activation [ms] | Ramp [ms] | Total [ms] "
        "| Ramp rate [kW/s] | Slope 10-90 % [kW/s] |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in a.steps:
        r = s.response
        lines.append(
            f"| {s.index} | {_kw(s.from_w)} | {_kw(s.to_w)} | {_ms(r.activation_s)} "
            f"| {_ms(r.ramp_s)} | {_ms(r.total_s)} | {_cell(r.ramp_rate_w_per_s / 1000, '.1f')} "
            f"| {_cell(r.slope_w_per_s / 1000, '.1f')} |"
        )
    sm = summary(a)

    def f(key: str, scale: float, fmt: str) -> str:
        v = sm[key]
        return "-" if v is None else format(v * scale, fmt)

    lines += [
        "",
        f"Transitions: {sm['transitions']}; mean activation {f('mean_activation_s', 1000, '.0f')}"
        f" ms (max {f('max_activation_s', 1000, '.0f')} ms), mean ramp "
        f"{f('mean_ramp_s', 1000, '.0f')} ms, mean ramp rate "
        f"{f('mean_ramp_rate_w_per_s', 1e-3, '.1f')} kW/s, mean slope "
        f"{f('mean_slope_w_per_s', 1e-3, '.1f')} kW/s.",
        "",
        "## Accuracy, precision, set-point linearity, efficiency (metrics ii, vi, vii)",
        "",
        "| Step | Setpoint [kW] | Measured [kW] | Error [W] | Error [%] | Precision [W] "
        "| Linearity dev. [W] | Settled | DC [kW] | AC [kW] | Efficiency [%] |",
        "|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|",
    ]
    for s in a.steps:
        r = s.response
        lines.append(
            f"| {s.index} | {_kw(s.to_w)} | {_kw(r.after_w, 3)} | {_cell(s.error_w, '.0f')} "
            f"| {_cell(s.error_pct, '.2f')} | {_cell(r.precision_w, '.1f')} "
            f"| {_cell(s.linearity_dev_w, '.0f')} | {'yes' if s.settled else 'no'} "
            f"| {_kw(s.dc_w, 3)} | {_kw(s.ac_w, 3)} | {_cell(s.efficiency * 100, '.2f')} |"
        )
    limited = [f"{s.index} ({s.limited_by})" for s in a.steps if s.limited_by]
    if limited:
        lines += ["", "The daemon clamped the setpoint of step(s) " + ", ".join(limited)
                  + ": their error is against the setpoint asked for."]  # fmt: skip
    lin = a.linearity
    lines += [
        "",
        f"Set-point linearity over {lin.points} settled steps: measured = "
        f"{_cell(lin.slope, '.4f')} x setpoint {'+' if not lin.offset_w < 0 else '-'} "
        f"{_cell(abs(lin.offset_w), '.0f')} W, R^2 = {_cell(lin.r2, '.6f')}, largest "
        f"deviation {_cell(lin.max_dev_w, '.0f')} W.",
        "",
    ]
    points = a.points()
    if points:
        lines += [
            "## Module efficiency (DC / AC charging, AC / DC discharging)",
            "",
            "| Step | Module | Voltage [V] | DC [kW] | AC [kW] | Efficiency [%] |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for s in a.steps:
            for m in s.modules:
                lines.append(
                    f"| {s.index} | {m.module} | {_cell(m.voltage_v, '.1f')} | {_kw(m.dc_w, 3)} "
                    f"| {_kw(m.ac_w, 3)} | {_cell(m.efficiency * 100, '.2f')} |"
                )
        lines.append("")
    lines += [
        "## Definitions",
        "",
        f"- Steady state: the last {o.steady:.0%} of each step; *before* is the previous "
        "step's steady state.",
        f"- Band: max({o.band_fraction:.0%} of the step, {o.band_min_w:.0f} W, 3 sigma of the "
        "response in either steady state).",
        "- Activation: command handed to the bus -> the response leaves the band around "
        "*before*. Ramp: -> it enters the band around the new value. Both crossings are "
        "interpolated between the measurements on either side. Ramp rate: step size / ramp "
        "time (as the thesis). Slope: least-squares dP/dt between 10 % and 90 % of the step.",
        "- Accuracy: steady mean - setpoint. Precision: standard deviation in the steady "
        "state. Linearity: least-squares line of the steady means over the setpoints.",
        f"- Efficiency: steady means of the module DC and AC powers; none below "
        f"{o.efficiency_min_w:.0f} W per module.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- plots


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _owned_modules(rec: Recording, connector: str) -> list[str]:
    out = []
    for name, s in rec.modules.items():
        if s.owner and sum(o == connector for o in s.owner) * 2 > len(s.owner):
            out.append(name)
    return out


def _ac_total(rec: Recording, connector: str, t: np.ndarray) -> np.ndarray | None:
    total = None
    for name in _owned_modules(rec, connector):
        s = rec.modules[name]
        mt, ac = s["mono"], s["ac_power_w"]
        ok = np.isfinite(mt) & np.isfinite(ac)
        if ok.sum() < 2:
            continue
        part = np.interp(t, mt[ok], ac[ok], left=np.nan, right=np.nan)
        total = part if total is None else total + part
    return total


def plot_response(a: Analysis, rec: Recording, path: Path, title: str = "") -> None:
    """Setpoint, DC and AC power over time; activation and arrival of every step."""
    plt = _plt()
    conn = rec.connectors[a.connector]
    t, p = conn["mono"], conn["power_w"]
    t0 = a.steps[0].t_cmd if a.steps else (float(t[0]) if len(t) else 0.0)
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=100)
    ok = np.isfinite(t) & np.isfinite(p)
    ac = _ac_total(rec, a.connector, t)
    if a.steps:
        st = [s.t_cmd - t0 for s in a.steps] + [a.steps[-1].t_end - t0]
        sp = [s.to_w / 1000 for s in a.steps]
        ax.step(st, [*sp, sp[-1]], where="post", color="black", lw=1.2, ls="--",
                label="setpoint")  # fmt: skip
    ax.plot(t[ok] - t0, p[ok] / 1000, color="tab:blue", lw=1.3, label="DC power (measured)")
    if ac is not None:
        ok_ac = np.isfinite(ac)
        ax.plot(t[ok_ac] - t0, ac[ok_ac] / 1000, color="tab:orange", lw=1.0, alpha=0.8,
                label="AC power (modules)")  # fmt: skip
    leave = [(s.response.leave_t - t0, s.response.before_w / 1000) for s in a.steps
             if math.isfinite(s.response.leave_t)]  # fmt: skip
    arrive = [(s.response.arrive_t - t0, s.response.after_w / 1000) for s in a.steps
              if math.isfinite(s.response.arrive_t)]  # fmt: skip
    if leave:
        ax.plot(*zip(*leave, strict=True), "v", color="tab:red", ms=6, label="activation")
    if arrive:
        ax.plot(*zip(*arrive, strict=True), "o", color="tab:green", ms=5, mfc="none",
                label="new value reached")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("time from the first step [s]")
    ax.set_ylabel("power [kW]  (+ charging, - discharging)")
    ax.set_title(title or f"{a.connector}: setpoint and response")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_steps(a: Analysis, rec: Recording, path: Path, title: str = "") -> bool:
    """One panel per transition, time from the command; False when there is none."""
    steps = [s for s in a.steps if s.transition][:MAX_STEP_PANELS]
    if not steps:
        return False
    plt = _plt()
    conn = rec.connectors[a.connector]
    t, p = conn["mono"], conn["power_w"]
    n = len(steps)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), dpi=100,
                             squeeze=False)  # fmt: skip
    for ax, s in zip(axes.flat, steps, strict=False):
        r = s.response
        span = s.t_end - s.t_cmd
        sel = (t >= s.t_cmd - 0.1 * span) & (t <= s.t_end) & np.isfinite(p)
        ax.step((t[sel] - s.t_cmd) * 1000, p[sel] / 1000, where="post", color="tab:blue", lw=1.2)
        ax.plot([-0.1 * span * 1000, 0, 0, span * 1000],
                [s.from_w / 1000, s.from_w / 1000, s.to_w / 1000, s.to_w / 1000],
                color="black", ls="--", lw=1.0)  # fmt: skip
        ax.axvline(0, color="grey", lw=0.8)
        for x, c in ((r.leave_t, "tab:red"), (r.arrive_t, "tab:green")):
            if math.isfinite(x):
                ax.axvline((x - s.t_cmd) * 1000, color=c, lw=1.0)
        ax.set_title(
            f"{s.index}: {_kw(s.from_w)} -> {_kw(s.to_w)} kW\n"
            f"act {_ms(r.activation_s)} ms, ramp {_ms(r.ramp_s)} ms, "
            f"{_cell(r.slope_w_per_s / 1000, '.1f')} kW/s",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.supxlabel("time from the command handed to the bus [ms]", fontsize=9)
    fig.supylabel("DC power [kW]", fontsize=9)
    fig.suptitle(title or f"{a.connector}: step responses (dashed: setpoint; red: activation; "
                 "green: new value reached)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _bins(values: np.ndarray, gap: float, choices: Sequence[float], max_bins: int
          ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(bin centres, bin index of each value). Values closer than ``gap`` to their
    neighbour share a bin (the levels of a staircase); when that makes more than
    ``max_bins``, uniform bins of the first width in ``choices`` that fits."""
    order = np.argsort(values)
    idx = np.zeros(len(values), dtype=int)
    k = 0
    for prev, cur in itertools.pairwise(order):
        if values[cur] - values[prev] > gap:
            k += 1
        idx[cur] = k
    if k + 1 <= max_bins:
        centres = np.array([float(np.mean(values[idx == i])) for i in range(k + 1)])
        return centres, idx
    span = float(np.ptp(values))
    width = next((w for w in choices if span / w + 1 <= max_bins), choices[-1])
    ib = np.round(values / width).astype(int)
    return np.arange(ib.min(), ib.max() + 1) * width, ib - ib.min()


def efficiency_grid(
    points: Sequence[ModulePoint],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(power bin centres W, voltage bin centres V, mean efficiency [voltage, power])."""
    pts = [m for m in points if math.isfinite(m.efficiency) and math.isfinite(m.voltage_v)]
    if not pts:
        return None
    pw = np.array([m.dc_w for m in pts])
    vv = np.array([m.voltage_v for m in pts])
    ee = np.array([m.efficiency for m in pts])
    p_gap = max(100.0, 0.02 * float(np.ptp(pw)))
    px, ip = _bins(pw, p_gap, POWER_BINS_W, 40)
    vy, iv = _bins(vv, 5.0, VOLTAGE_BINS_V, 25)
    total = np.zeros((len(vy), len(px)))
    count = np.zeros((len(vy), len(px)))
    for a, b, e in zip(iv, ip, ee, strict=True):
        total[a, b] += e
        count[a, b] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return px, vy, grid


def plot_efficiency(points: Sequence[ModulePoint], path: Path, title: str = "") -> bool:
    """Heatmap of module efficiency over DC voltage x DC power (one cell per operating
    point, no interpolation; thesis figures 4.6 / 4.7); False without points."""
    g = efficiency_grid(points)
    if g is None:
        return False
    pw, vv, grid = g
    plt = _plt()
    fig, ax = plt.subplots(
        figsize=(max(6.0, min(16.0, 2.5 + 0.62 * len(pw))),
                 max(3.0, min(9.0, 1.8 + 0.5 * len(vv)))), dpi=100)  # fmt: skip
    finite = grid[np.isfinite(grid)]
    vmin = max(0.5, float(finite.min()) - 0.005)
    vmax = min(1.0, float(finite.max()) + 0.005)
    mesh = ax.pcolormesh(np.arange(len(pw) + 1), np.arange(len(vv) + 1),
                         np.ma.masked_invalid(grid * 100), cmap="RdYlGn",
                         vmin=vmin * 100, vmax=vmax * 100, edgecolors="white",
                         linewidth=0.5)  # fmt: skip
    fig.colorbar(mesh, ax=ax, label="efficiency [%]")
    if grid.size <= 1000:
        for i in range(len(vv)):
            for j in range(len(pw)):
                e = grid[i, j]
                if math.isfinite(e):
                    ax.text(j + 0.5, i + 0.5, f"{e * 100:.1f}", ha="center", va="center",
                            fontsize=7)  # fmt: skip
    step = max(1, len(pw) // 20)
    ax.set_xticks(np.arange(len(pw))[::step] + 0.5)
    ax.set_xticklabels([f"{p / 1000:.1f}" for p in pw[::step]], fontsize=7, rotation=45)
    stepv = max(1, len(vv) // 15)
    ax.set_yticks(np.arange(len(vv))[::stepv] + 0.5)
    ax.set_yticklabels([f"{v:.0f}" for v in vv[::stepv]], fontsize=7)
    ax.set_xlabel("DC power per module [kW]  (+ charging, - discharging)")
    ax.set_ylabel("DC voltage [V]")
    ax.set_title(title or "Module efficiency (DC/AC charging, AC/DC discharging)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------- all of it


def write_report(
    analyses: Sequence[Analysis],
    recs: Sequence[Recording],
    out_dir: str | Path,
    title: str = "",
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Every output of one or more analyses into ``out_dir``; returns file name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def add(name: str) -> Path:
        files[name] = out / name
        return files[name]

    write_steps_csv(add("steps.csv"), analyses, recs)
    write_efficiency_csv(add("efficiency.csv"), analyses)
    parts = []
    for i, (a, rec) in enumerate(zip(analyses, recs, strict=True)):
        suffix = "" if len(analyses) == 1 else f"-{i + 1}"
        parts.append(markdown(a, title, notes))
        if a.connector in rec.connectors:
            plot_response(a, rec, add(f"response{suffix}.png"), title)
        png = out / f"steps{suffix}.png"
        if plot_steps(a, rec, png):
            files[png.name] = png
    points = [m for a in analyses for m in a.points()]
    png = out / "efficiency.png"
    if plot_efficiency(points, png):
        files[png.name] = png
    add("report.md").write_text("\n\n".join(parts), encoding="utf-8")
    add("summary.json").write_text(
        json.dumps([summary(a) | {"source": a.source} for a in analyses], indent=2) + "\n",
        encoding="utf-8",
    )
    return files
