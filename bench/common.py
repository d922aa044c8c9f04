"""Shared helpers for the benchmarks: timing statistics and the result table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Row:
    """One line of the benchmark table.

    ``median`` and ``p99`` are in ``unit``; ``baseline_median`` is the same measurement of a
    baseline run in the same process (``ratio`` = baseline / measured, so > 1 is faster).
    """

    name: str
    unit: str
    median: float
    p99: float
    baseline_median: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_median is None or self.median == 0:
            return None
        return self.baseline_median / self.median


def percentile(values: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0..100) by linear interpolation; ``values`` need not be sorted."""
    if not values:
        raise ValueError("no samples")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def format_table(rows: Sequence[Row]) -> str:
    head = f"{'benchmark':44} {'median':>12} {'p99':>12} {'baseline':>12} {'ratio':>8}  unit"
    lines = [head, "-" * len(head)]
    for r in rows:
        base = f"{r.baseline_median:12.4g}" if r.baseline_median is not None else f"{'-':>12}"
        ratio = f"{r.ratio:8.1f}" if r.ratio is not None else f"{'-':>8}"
        lines.append(
            f"{r.name:44} {r.median:12.4g} {r.p99:12.4g} {base} {ratio}  {r.unit}"
            + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)
