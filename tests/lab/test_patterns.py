"""Test patterns a and b as step lists (thesis figures 3.17a / 3.17b, tables 4.2-4.8)."""

from __future__ import annotations

import itertools

import pytest

from bptd.lab.patterns import PatternParams, duration_s, levels, params_from, plan


def transitions(values: list[float]) -> list[tuple[float, float]]:
    return list(itertools.pairwise(values))


def test_pattern_b_steps_in_the_order_of_the_thesis_tables() -> None:
    p = PatternParams("b", min_w=-11000, max_w=10500)
    # table 4.5 (1 BMPU, 400 V emulator): From / To of its eight rows
    table_4_5 = [(0, 10500), (10500, 0), (0, -11000), (-11000, 0), (0, -11000),
                 (-11000, 10500), (10500, -11000), (-11000, 0)]  # fmt: skip
    assert transitions(levels(p)) == table_4_5
    mirrored = levels(PatternParams("b", -11000, 10500, first="discharge"))
    assert mirrored == [0, -11000, 0, 10500, 0, 10500, -11000, 10500, 0]


def test_pattern_b_one_side_and_repetitions() -> None:
    assert levels(PatternParams("b", -11000, 10500, direction="charge")) == [
        0, 10500, 0, 10500, 0,
    ]  # fmt: skip
    assert levels(PatternParams("b", -11000, 10500, direction="discharge")) == [
        0, -11000, 0, -11000, 0,
    ]  # fmt: skip
    twice = levels(PatternParams("b", -5000, 5000, repetitions=2))
    assert len(twice) == 1 + 2 * 8 and twice[1:9] == twice[9:]


def test_pattern_a_is_a_staircase_over_the_whole_range() -> None:
    p = PatternParams("a", min_w=-3000, max_w=3000, step_w=1000)
    assert levels(p) == [0, 1000, 2000, 3000, 2000, 1000, 0,
                         -1000, -2000, -3000, -2000, -1000, 0]  # fmt: skip
    # every step is at most step_w, the range ends are reached exactly
    lv = levels(PatternParams("a", min_w=-11000, max_w=10500, step_w=2000))
    assert max(lv) == 10500 and min(lv) == -11000
    assert all(abs(b - a) <= 2000 for a, b in transitions(lv))
    assert lv[1:7] == [2000, 4000, 6000, 8000, 10000, 10500]


def test_pattern_a_directions_and_order() -> None:
    assert levels(PatternParams("a", -2000, 2000, 1000, direction="charge")) == [
        0, 1000, 2000, 1000, 0,
    ]  # fmt: skip
    assert levels(PatternParams("a", -2000, 2000, 1000, direction="discharge")) == [
        0, -1000, -2000, -1000, 0,
    ]  # fmt: skip
    assert levels(PatternParams("a", -2000, 2000, 1000, first="discharge"))[1:4] == [
        -1000, -2000, -1000,
    ]  # fmt: skip
    # a charge-only session: only the charge side
    assert levels(PatternParams("a", 0, 2000, 1000)) == [0, 1000, 2000, 1000, 0]
    assert levels(PatternParams("b", 0, 2000)) == [0, 2000, 0, 2000, 0]
    assert levels(PatternParams("b", -3000, 0)) == [0, -3000, 0, -3000, 0]


def test_plan_times_and_duration() -> None:
    p = PatternParams("b", -1000, 1000, interval_s=2.5)
    steps = plan(p)
    assert [s.index for s in steps] == list(range(1, 10))
    assert [s.at_s for s in steps] == [2.5 * i for i in range(9)]
    assert duration_s(p) == pytest.approx(22.5)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"min_w": 100}, "min_w"),
        ({"max_w": -1}, "max_w"),
        ({"step_w": 0}, "step_w"),
        ({"interval_s": 0}, "interval_s"),
        ({"repetitions": 0}, "repetitions"),
        ({"repetitions": 1.5}, "repetitions"),
        ({"direction": "up"}, "direction"),
        ({"first": "both"}, "first"),
        ({"max_w": "lots"}, "max_w"),
        ({"min_w": 0, "direction": "discharge"}, "empty"),
        ({"step_w": 0.001}, "steps"),
    ],
)
def test_bad_parameters_say_what_is_wrong(changes: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        levels(params_from("a", changes, -11000, 10500))


def test_params_from_defaults_and_arguments() -> None:
    p = params_from("b", {}, -11000, 10500)
    assert (p.min_w, p.max_w, p.interval_s, p.repetitions) == (-11000, 10500, 10.0, 1)
    p = params_from("a", {"max_w": 5000, "step_w": 500, "repetitions": 2.0}, -11000, 10500)
    assert (p.max_w, p.step_w, p.repetitions, p.interval_s) == (5000, 500, 2, 30.0)
    with pytest.raises(ValueError, match="pattern"):
        params_from("c", {}, -1, 1)
