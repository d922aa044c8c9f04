"""Property: for any sequence of API commands, SUP codes and plant events, every tick
keeps the rules in rig.check_invariants (no current outside energy transfer, small phase
currents only, contactors open under load only on a fault that says so, discharge only
for a BPT EV in bidirectional mode, output contactors closed only while energized)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptd.config import load_config
from bptd.session import SessionConfig, SessionError, State, Station

from .rig import Rig

CONFIG = load_config()

commands = st.one_of(
    st.tuples(st.just("authorize")),
    st.tuples(
        st.just("allocate"),
        st.sampled_from([[1, 2], [1], [2]]),
        st.sampled_from(["parallel", "series"]),
    ),
    st.tuples(st.just("set_mode"), st.booleans(), st.sampled_from(["dynamic", "scheduled"])),
    st.tuples(st.just("setpoint"), st.floats(-30000, 30000)),
    st.tuples(st.sampled_from(["start", "stop", "terminate", "cancel", "rearm", "reset"])),
    st.tuples(st.just("supervisor_request"), st.integers(0, 7)),
)
plant_events = st.tuples(
    st.just("plant"),
    st.sampled_from(
        ["plug", "unplug", "ev_stop", "cp_e", "cp_ok", "estop", "estop_off", "module_off",
         "module_on", "bad_insulation", "good_insulation", "trip", "untrip", "charge_only"]
    ),
)  # fmt: skip
actions = st.lists(
    st.tuples(st.sampled_from(["ccs", "chademo"]), st.one_of(commands, plant_events),
              st.floats(0.02, 1.5)),
    min_size=1,
    max_size=14,
)  # fmt: skip


def _plant(rig: Rig, name: str, what: str) -> None:
    c = rig.conn[name]
    if what == "plug":
        c.ev.plugged, c.ev.wants_stop = True, False
    elif what == "unplug":
        c.ev.plugged = False
    elif what == "ev_stop":
        c.ev.wants_stop = True
    elif what in ("cp_e", "cp_ok"):
        c.cp_override = 4 if what == "cp_e" else None
    elif what in ("estop", "estop_off"):
        c.estop = what == "estop"
    elif what in ("module_off", "module_on"):
        rig.modules[1].online = what == "module_on"
    elif what in ("bad_insulation", "good_insulation"):
        c.insulation_ohm = 50e3 if what == "bad_insulation" else 10e6
    elif what in ("trip", "untrip"):
        rig.modules[2].tripped = what == "trip"
    elif what == "charge_only":
        c.ev.bpt = False


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(actions)
def test_random_sessions_keep_the_rules(steps: list[tuple[str, tuple[Any, ...], float]]) -> None:
    rig = Rig(Station.from_config(CONFIG, SessionConfig()))
    rig.run(0.03)
    for name, action, duration in steps:
        if action[0] == "plant":
            _plant(rig, name, action[1])
        else:
            try:
                getattr(rig.session(name), action[0])(*action[1:])
            except SessionError as exc:
                assert exc.code in ("invalid_argument", "out_of_range", "wrong_state",
                                    "not_allowed")  # fmt: skip
        rig.run(duration)  # check_invariants runs on every tick
    owners = rig.station.owners()
    for name, s in rig.station.sessions.items():
        mine = {n for n, who in owners.items() if who == name}
        if s.state in (State.IDLE, State.CONNECTED, State.AUTHORIZED, State.FINISHED):
            assert not mine
        assert len(set(owners)) == len(owners)


def test_happy_path_still_reaches_transfer_after_random_noise() -> None:
    rig = Rig(Station.from_config(CONFIG, SessionConfig()))
    s = rig.session("ccs")
    s.setpoint(3000.0)
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.run(0.1)
    s.authorize()
    s.allocate([1], "parallel")
    s.start()
    rig.run_until("ccs", State.ENERGY_TRANSFER, 15.0)
