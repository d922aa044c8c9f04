"""Charging-profile compositing as a pure function of time (bptd.ocpp.profiles)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptd.ocpp import profiles as prof
from bptd.ocpp.profiles import Effective, Period, Profile, ProfileError, TxContext

T0 = 1_750_000_000.0  # a fixed "now"
DAY = 86400.0


def p(
    pid: int, purpose: str, periods: list[tuple[int, float]], *, evse: int = 1, stack: int = 0,
    unit: str = "W", kind: str = "Absolute", start: float | None = T0, **kw: Any,
) -> Profile:  # fmt: skip
    return Profile(
        id=pid, evse=evse, stack_level=stack, purpose=purpose, kind=kind, unit=unit,
        periods=tuple(Period(s, limit=x) for s, x in periods), installed_at=T0, start=start, **kw,
    )  # fmt: skip


TX = TxContext("tx-1", T0)


def test_the_highest_stack_level_prevails_while_its_schedule_lasts() -> None:
    profiles = [
        p(1, prof.TX_DEFAULT, [(0, 10000.0)]),
        p(2, prof.TX_DEFAULT, [(0, 5000.0)], stack=1, duration=60.0),
    ]
    assert prof.effective(profiles, 1, T0 + 10, TX).charge_w == 5000.0
    assert prof.next_change(profiles, T0 + 10, TX) == T0 + 60
    assert prof.effective(profiles, 1, T0 + 60, TX).charge_w == 10000.0
    assert prof.effective(profiles, 1, T0 - 1, TX).charge_w is None  # before the start


def test_periods_follow_each_other_and_the_next_change_is_the_next_period() -> None:
    profiles = [p(1, prof.TX_DEFAULT, [(0, 8000.0), (300, 4000.0), (900, 0.0)])]
    assert prof.effective(profiles, 1, T0 + 299.9, TX).charge_w == 8000.0
    assert prof.effective(profiles, 1, T0 + 300, TX).charge_w == 4000.0
    assert prof.next_change(profiles, T0 + 300, TX) == T0 + 900
    assert prof.effective(profiles, 1, T0 + 5000, TX).charge_w == 0.0


def test_station_maximum_and_transaction_level_combine_per_unit() -> None:
    profiles = [
        p(1, prof.STATION_MAX, [(0, 20.0)], evse=0, unit="A"),
        p(2, prof.STATION_MAX, [(0, 9000.0)], evse=0, stack=1, duration=30.0),
        p(3, prof.TX_DEFAULT, [(0, 11000.0)]),
        p(4, prof.TX_DEFAULT, [(0, 16.0)], evse=2, unit="A"),
    ]
    eff = prof.effective(profiles, 1, T0, TX)
    assert (eff.charge_w, eff.charge_a) == (9000.0, None)  # the stack-1 station max in W
    later = prof.effective(profiles, 1, T0 + 30, TX)
    assert (later.charge_w, later.charge_a) == (11000.0, 20.0)
    assert later.charge_limit("W", 690.0) == 11000.0
    assert later.charge_limit("A", 690.0) == pytest.approx(11000.0 / 690.0)
    other = prof.effective(profiles, 2, T0 + 30, TxContext("tx-2", T0))
    assert (other.charge_w, other.charge_a) == (None, 16.0)
    # two transactions share the station maximum
    shared = prof.effective(profiles, 1, T0 + 30, TX, share=0.5)
    assert shared.charge_a == 10.0 and shared.charge_w == 11000.0
    # EVSE 0: the station's own maximum only
    assert prof.effective(profiles, 0, T0 + 30).charge_a == 20.0


def test_a_tx_profile_applies_only_to_its_transaction_and_beats_tx_default() -> None:
    profiles = [
        p(1, prof.TX_DEFAULT, [(0, 7000.0)], stack=5),
        p(2, prof.TX, [(0, 3000.0)], transaction_id="tx-1"),
    ]
    assert prof.effective(profiles, 1, T0, TX).charge_w == 3000.0
    assert prof.effective(profiles, 1, T0, TxContext("tx-9", T0)).charge_w == 7000.0
    assert prof.effective(profiles, 1, T0, None).charge_w == 7000.0


def test_an_evse_specific_tx_default_wins_a_tie_with_the_station_wide_one() -> None:
    profiles = [
        p(1, prof.TX_DEFAULT, [(0, 7000.0)], evse=0),
        p(2, prof.TX_DEFAULT, [(0, 5000.0)], evse=1),
    ]
    assert prof.effective(profiles, 1, T0, TX).charge_w == 5000.0
    assert prof.effective(profiles, 2, T0, TX).charge_w == 7000.0


def test_recurring_relative_and_validity() -> None:
    daily = p(1, prof.TX_DEFAULT, [(0, 3000.0), (8 * 3600, 11000.0)], kind="Recurring",
              start=T0 - 10 * DAY, recurrency="Daily")  # fmt: skip
    assert prof.effective([daily], 1, T0 + 3600, TX).charge_w == 3000.0
    assert prof.effective([daily], 1, T0 + 9 * 3600, TX).charge_w == 11000.0
    assert prof.effective([daily], 1, T0 + DAY + 60, TX).charge_w == 3000.0
    assert prof.next_change([daily], T0 + 9 * 3600, TX) == T0 + DAY
    relative = p(2, prof.TX_DEFAULT, [(0, 4000.0), (600, 9000.0)], kind="Relative", start=None)
    tx = TxContext("tx-1", T0 + 100)
    assert prof.effective([relative], 1, T0 + 650, tx).charge_w == 4000.0
    assert prof.effective([relative], 1, T0 + 700, tx).charge_w == 9000.0
    assert prof.effective([relative], 1, T0 + 700, None).charge_w is None
    windowed = p(3, prof.TX_DEFAULT, [(0, 2000.0)], valid_from=T0 + 50, valid_to=T0 + 100)
    assert prof.effective([windowed], 1, T0 + 49, TX).charge_w is None
    assert prof.effective([windowed], 1, T0 + 50, TX).charge_w == 2000.0
    assert prof.effective([windowed], 1, T0 + 100, TX).charge_w is None


def test_v2x_values_come_from_the_transaction_level_and_discharge_limits_from_both() -> None:
    tx_level = Profile(
        id=1, evse=1, stack_level=0, purpose=prof.TX, kind="Absolute", unit="W",
        periods=(Period(0, limit=11000.0, discharge_limit=8000.0, setpoint=-9000.0,
                        mode="CentralSetpoint"),),
        installed_at=T0, start=T0, transaction_id="tx-1",
    )  # fmt: skip
    station = Profile(
        id=2, evse=0, stack_level=0, purpose=prof.STATION_MAX, kind="Absolute", unit="W",
        periods=(Period(0, limit=15000.0, discharge_limit=5000.0),), installed_at=T0, start=T0,
    )  # fmt: skip
    eff = prof.effective([tx_level, station], 1, T0 + 1, TX)
    assert eff == Effective(
        charge_w=11000.0, discharge_w=5000.0, setpoint_w=-9000.0, mode="CentralSetpoint",
        tx_profile=1, station_profile=2,
    )  # fmt: skip
    assert eff.setpoint("A", 690.0) == pytest.approx(-9000.0 / 690.0)


def test_composite_merges_equal_periods_on_whole_seconds() -> None:
    profiles = [
        p(1, prof.TX_DEFAULT, [(0, 8000.0), (10, 8000.0), (20, 4000.0)], start=T0 + 0.4),
        p(2, prof.STATION_MAX, [(0, 6000.0)], evse=0, duration=15.0, start=T0 + 0.4),
    ]
    periods = prof.composite(profiles, 1, T0, 60, TX)
    assert [(o, e.charge_w) for o, e in periods] == [(0, None), (1, 6000.0), (16, 8000.0),
                                                     (21, 4000.0)]  # fmt: skip


def raw_v2(**period: Any) -> dict[str, Any]:
    return {
        "id": 5, "stack_level": 1, "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [{"id": 1, "charging_rate_unit": "W",
                               "start_schedule": "2025-06-15T12:00:00Z",
                               "charging_schedule_period": [{"start_period": 0, **period}]}],
    }  # fmt: skip


def test_parsing_and_refusals() -> None:
    ok = prof.from_v2(1, raw_v2(limit=7400.0), None, T0, v2x=False)
    assert ok.start == prof.parse_time("2025-06-15T12:00:00+00:00")
    assert ok.periods[0].limit == 7400.0 and ok.purpose == prof.TX_DEFAULT
    v2x = prof.from_v2(1, raw_v2(setpoint=-5000.0, discharge_limit=-3000.0,
                                 operation_mode="CentralSetpoint"), None, T0, v2x=True)  # fmt: skip
    assert v2x.periods[0].discharge_limit == 3000.0 and v2x.periods[0].setpoint == -5000.0
    cases = [
        (raw_v2(operation_mode="LocalFrequency"), "UnsupportedParam"),
        (raw_v2(limit=-1.0), "InvalidValue"),
        (raw_v2(discharge_limit=10.0), "InvalidValue"),
        (raw_v2(), None),  # 2.1: a period may have no limit
    ]
    for raw, reason in cases:
        if reason is None:
            prof.from_v2(1, raw, None, T0, v2x=True)
            continue
        with pytest.raises(ProfileError) as exc:
            prof.from_v2(1, raw, None, T0, v2x=True)
        assert exc.value.reason == reason
    with pytest.raises(ProfileError):  # 2.0.1 needs a limit in every period
        prof.from_v2(1, raw_v2(), None, T0, v2x=False)
    bad = raw_v2(limit=1.0)
    bad["charging_schedule"][0]["charging_schedule_period"].append({"start_period": 0, "limit": 2})
    with pytest.raises(ProfileError, match="strictly increase"):
        prof.from_v2(1, bad, None, T0, v2x=False)
    v16 = {
        "charging_profile_id": 3, "stack_level": 0,
        "charging_profile_purpose": "ChargePointMaxProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": {"charging_rate_unit": "A",
                              "charging_schedule_period": [{"start_period": 0, "limit": 16}]},
    }  # fmt: skip
    assert prof.from_v16(0, v16, None, T0).purpose == prof.STATION_MAX


def test_the_store_replaces_by_id_and_by_stack_purpose_evse() -> None:
    store = prof.ProfileStore(max_stack_level=3, max_periods=2, max_profiles=2)
    store.install(p(1, prof.TX_DEFAULT, [(0, 1.0)]))
    store.install(p(1, prof.TX_DEFAULT, [(0, 2.0)], stack=1))  # same id
    assert [(q.id, q.stack_level) for q in store.profiles] == [(1, 1)]
    store.install(p(2, prof.TX_DEFAULT, [(0, 3.0)], stack=1))  # same stack, purpose, evse
    assert [q.id for q in store.profiles] == [2]
    store.install(p(3, prof.TX_DEFAULT, [(0, 3.0)], stack=2))
    with pytest.raises(ProfileError) as exc:
        store.install(p(4, prof.TX_DEFAULT, [(0, 3.0)], stack=3))
    assert exc.value.reason == "NoCapacity"
    with pytest.raises(ProfileError):
        store.install(p(5, prof.TX_DEFAULT, [(0, 3.0)], stack=4))
    with pytest.raises(ProfileError):
        store.install(p(6, prof.TX_DEFAULT, [(0, 1.0), (1, 2.0), (2, 3.0)]))
    assert [q.id for q in store.clear(stack_level=2)] == [3]
    assert store.clear(pid=99) == []


@st.composite
def random_profiles(draw: st.DrawFn) -> list[Profile]:
    out = []
    for pid in range(draw(st.integers(1, 5))):
        starts = sorted(draw(st.sets(st.integers(1, 500), max_size=4)))
        periods = [(0, draw(st.floats(0, 20000)))]
        periods += [(s, draw(st.floats(0, 20000))) for s in starts]
        out.append(
            p(
                pid,
                draw(st.sampled_from([prof.TX_DEFAULT, prof.STATION_MAX, prof.TX])),
                periods,
                evse=draw(st.sampled_from([0, 1])),
                stack=draw(st.integers(0, 3)),
                unit=draw(st.sampled_from(["W", "A"])),
                start=T0 + draw(st.integers(-100, 300)),
                duration=draw(st.none() | st.floats(1, 800)),
                transaction_id="tx-1",
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(random_profiles())
def test_the_composite_schedule_agrees_with_the_instantaneous_value(
    profiles: list[Profile],
) -> None:
    periods = prof.composite(profiles, 1, T0, 900, TX)
    assert periods[0][0] == 0
    assert all(a[0] < b[0] for a, b in itertools.pairwise(periods))
    for second in range(0, 900, 7):
        current = [e for o, e in periods if o <= second][-1]
        assert current == prof.effective(profiles, 1, T0 + second, TX), second
