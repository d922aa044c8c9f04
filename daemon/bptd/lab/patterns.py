"""Test patterns a and b of the thesis (section 3.6, figures 3.17a / 3.17b), as step lists.

A pattern is a list of setpoint *levels*, each held for ``interval_s``; the first level is
always 0 W (the baseline every metric of the first step is measured from). Pure: no I/O.

- **a** (figure 3.17a, staircase over the operating range; for set-point linearity,
  accuracy, precision and efficiency): 0 -> ``max_w`` in steps of ``step_w``, back to 0,
  on to ``min_w`` in the same steps and back to 0 (``first=discharge`` sweeps the
  discharge side first). The last step before an end of the range is shorter when the
  range is not a multiple of the step.
- **b** (figure 3.17b, steps for activation and ramp times): the order of the thesis's
  tables 4.2-4.8: 0 -> max -> 0 -> min -> 0 -> min -> max -> min -> 0, i.e. every kind of
  transition (from rest, to rest, through zero in both directions). ``first=discharge``
  mirrors it.

``direction=charge`` / ``discharge`` keeps one side of the range (a: 0 -> max -> 0; b:
0 -> max -> 0 -> max -> 0, and the mirror); a range that ends at 0 on one side (a
charge-only session) is the other side only. ``repetitions`` repeats the cycle after the
first 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("a", "b")
DIRECTIONS = ("both", "charge", "discharge")
FIRSTS = ("charge", "discharge")
#: defaults by pattern: step (a only) and step interval. The thesis held each level about
#: 30 s; pattern b only needs the response to settle (activation + ramp, ~1-3 s).
DEFAULT_STEP_W = 1000.0
DEFAULT_INTERVAL_S = {"a": 30.0, "b": 10.0}
MAX_LEVELS = 10000
#: the keys a pattern takes (``connector`` and the analysis keys are the runner's)
PATTERN_KEYS = ("min_w", "max_w", "step_w", "interval_s", "repetitions", "direction", "first")


@dataclass(frozen=True)
class PatternParams:
    kind: str
    min_w: float  # the discharge end of the range, <= 0
    max_w: float  # the charge end of the range, >= 0
    step_w: float = DEFAULT_STEP_W
    interval_s: float = 10.0
    repetitions: int = 1
    direction: str = "both"
    first: str = "charge"

    def check(self) -> PatternParams:
        """``self``, or ValueError naming what is wrong."""
        if self.kind not in KINDS:
            raise ValueError(f"pattern must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for name in ("min_w", "max_w", "step_w", "interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite")
        if self.min_w > 0:
            raise ValueError(f"min_w is the discharge end of the range: <= 0, not {self.min_w}")
        if self.max_w < 0:
            raise ValueError(f"max_w is the charge end of the range: >= 0, not {self.max_w}")
        if self.step_w <= 0:
            raise ValueError(f"step_w must be > 0, not {self.step_w}")
        if self.interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, not {self.interval_s}")
        if isinstance(self.repetitions, bool) or not isinstance(self.repetitions, int):
            raise ValueError(f"repetitions must be an integer, not {self.repetitions!r}")
        if self.repetitions < 1:
            raise ValueError(f"repetitions must be >= 1, not {self.repetitions}")
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}"
            )
        if self.first not in FIRSTS:
            raise ValueError(f"first must be one of {', '.join(FIRSTS)}, not {self.first!r}")
        sides = {"both": (self.max_w, self.min_w), "charge": (self.max_w,),
                 "discharge": (self.min_w,)}[self.direction]  # fmt: skip
        if not any(sides):
            raise ValueError(f"the range {self.min_w:g}..{self.max_w:g} W is empty for "
                             f"direction={self.direction}")  # fmt: skip
        return self


@dataclass(frozen=True)
class Step:
    """One level of a pattern: ``index`` counts from 1, ``at_s`` from the pattern start."""

    index: int
    setpoint_w: float
    at_s: float


def _ramp(end: float, step: float) -> list[float]:
    """0 (excluded) -> ``end`` (included) in steps of ``step``; [] when ``end`` is 0."""
    if end == 0:
        return []
    n = math.ceil(abs(end) / step - 1e-9)
    if n > MAX_LEVELS:
        raise ValueError(f"{n} steps from 0 to {end:g} W: more than {MAX_LEVELS}; use a "
                         "larger step_w")  # fmt: skip
    sign = 1.0 if end > 0 else -1.0
    return [sign * min(k * step, abs(end)) for k in range(1, n + 1)]


def _side_a(end: float, step: float) -> list[float]:
    """0 -> end -> 0 (the leading 0 excluded)."""
    up = _ramp(end, step)
    return up + up[-2::-1] + [0.0] if up else []


def cycle(p: PatternParams) -> list[float]:
    """One cycle of the pattern, without the leading 0."""
    hi, lo = float(p.max_w), float(p.min_w)
    if p.first == "discharge":
        hi, lo = lo, hi
    direction = p.direction
    if direction == "both" and not p.min_w:
        direction = "charge"  # e.g. a charge-only session: its range ends at 0
    elif direction == "both" and not p.max_w:
        direction = "discharge"
    if p.kind == "a":
        if direction == "charge":
            return _side_a(p.max_w, p.step_w)
        if direction == "discharge":
            return _side_a(p.min_w, p.step_w)
        return _side_a(hi, p.step_w) + _side_a(lo, p.step_w)
    if direction == "charge":
        return [p.max_w, 0.0, p.max_w, 0.0]
    if direction == "discharge":
        return [p.min_w, 0.0, p.min_w, 0.0]
    return [hi, 0.0, lo, 0.0, lo, hi, lo, 0.0]


def levels(p: PatternParams) -> list[float]:
    """Every level of the pattern in order, starting with the baseline 0."""
    p.check()
    one = cycle(p)
    if len(one) * p.repetitions + 1 > MAX_LEVELS:
        raise ValueError(
            f"{len(one) * p.repetitions + 1} steps: more than {MAX_LEVELS}; "
            "use a larger step_w or fewer repetitions"
        )
    return [0.0] + [float(v) + 0.0 for v in one * p.repetitions]


def plan(p: PatternParams) -> list[Step]:
    """The steps with their times from the pattern start."""
    return [Step(i + 1, w, i * p.interval_s) for i, w in enumerate(levels(p))]


def duration_s(p: PatternParams) -> float:
    return len(levels(p)) * p.interval_s


def params_from(kind: str, args: Mapping[str, Any], min_w: float, max_w: float) -> PatternParams:
    """Pattern parameters from ``key=value`` arguments; ``min_w`` / ``max_w`` are the
    defaults of the range (the connector's limits). Unknown keys are the caller's."""
    if kind not in KINDS:
        raise ValueError(f"pattern must be one of {', '.join(KINDS)}, not {kind!r}")
    p = PatternParams(kind, min_w, max_w, interval_s=DEFAULT_INTERVAL_S[kind])
    given = {k: args[k] for k in PATTERN_KEYS if k in args}
    if "repetitions" in given and isinstance(given["repetitions"], float):
        if not given["repetitions"].is_integer():
            raise ValueError(f"repetitions must be an integer, not {given['repetitions']}")
        given["repetitions"] = int(given["repetitions"])
    return replace(p, **given).check()
