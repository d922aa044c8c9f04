"""Whole sessions in simulated time: charge-only, BPT dynamic, scheduled, SUP codes."""

from __future__ import annotations

import itertools

from bptd.session import CommandEvent, State, StateChanged
from bptd.session.types import CP_MODE_PWM, CP_MODE_STEADY, DC_MINUS, DC_PLUS, OUTPUTS

from .rig import Rig

HAPPY = [
    State.IDLE,
    State.CONNECTED,
    State.AUTHORIZED,
    State.ALLOCATED,
    State.CABLE_CHECK,
    State.PRECHARGE,
    State.ENERGY_TRANSFER,
    State.STOPPING,
    State.WELDING_DETECTION,
    State.FINISHED,
    State.IDLE,
]


def plug_and_start(rig: Rig, modules: list[int] | None = None, topology: str = "parallel") -> None:
    s = rig.session()
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.run_until("ccs", State.CONNECTED, 1.0)
    s.authorize()
    s.allocate(modules or [1, 2], topology)
    s.start()
    rig.run_until("ccs", State.ENERGY_TRANSFER, 15.0)


def finish(rig: Rig) -> None:
    rig.conn["ccs"].ev.wants_stop = True
    rig.run_until("ccs", State.FINISHED, 10.0)
    rig.conn["ccs"].ev.plugged = False
    rig.run_until("ccs", State.IDLE, 1.0)


def test_charge_only_ev_full_session(rig: Rig) -> None:
    ev = rig.conn["ccs"].ev
    ev.bpt = False
    s = rig.session()
    s.set_mode(False, "dynamic")
    s.setpoint(15000.0)
    plug_and_start(rig)
    rig.run(1.0)
    tick = rig.history["ccs"][-1]
    assert tick.out.chipset.contactor_command & OUTPUTS == OUTPUTS
    assert tick.out.chipset.cp_mode == CP_MODE_PWM and tick.out.chipset.pwm_duty_permille == 50
    assert 15000.0 / 390 < tick.out.power.requested_current_a < 15000.0 / 370
    assert rig.conn["ccs"].current_a > 30.0
    finish(rig)
    assert rig.states() == HAPPY
    hist = rig.history["ccs"]
    # no current requested before energy transfer; small phase current only
    first_transfer = next(i for i, t in enumerate(hist) if t.out.state is State.ENERGY_TRANSFER)
    assert all(t.out.power.requested_current_a == 0.0 for t in hist[:first_transfer])
    assert all(t.inputs.measured_current_a == 0.0 for t in hist[:first_transfer])
    # contactors open only below the threshold
    for prev, t in itertools.pairwise(hist):
        if prev.out.chipset.contactor_command & DC_PLUS and not t.out.chipset.contactor_command & (
            DC_PLUS | DC_MINUS
        ):
            assert abs(t.inputs.measured_current_a) < 1.0
    assert hist[-1].out.chipset.cp_mode == CP_MODE_STEADY
    assert hist[-1].out.chipset.contactor_command == 0
    assert rig.station.owners() == {}
    changes = [e for e in rig.events() if isinstance(e, StateChanged)]
    assert all(e.reason and e.source for e in changes)


def test_charge_only_ev_refuses_discharge(rig: Rig) -> None:
    rig.conn["ccs"].ev.bpt = False
    s = rig.session()
    s.set_mode(True, "dynamic")
    s.setpoint(-5000.0)  # accepted before the EV is known; the EV gates it at run time
    plug_and_start(rig)
    rig.run(0.5)
    assert rig.history["ccs"][-1].out.power.requested_current_a == 0.0
    assert not rig.history["ccs"][-1].out.power.discharge_allowed
    # once the EV is known not to be BPT, a discharge setpoint is refused
    import pytest

    from bptd.session import SessionError

    with pytest.raises(SessionError) as exc:
        s.setpoint(-6000.0)
    assert exc.value.code == "not_allowed"


def test_bpt_dynamic_direction_changes_never_open(rig: Rig) -> None:
    s = rig.session()
    s.set_mode(True, "dynamic")
    plug_and_start(rig)
    start = len(rig.history["ccs"])
    signs = []
    for power in (10000.0, -10000.0, 5000.0, -8000.0, 0.0, 9000.0, -3000.0):
        s.setpoint(power)
        rig.run(1.5)
        signs.append(rig.conn["ccs"].current_a)
    transfer = rig.history["ccs"][start:]
    assert all(t.out.state is State.ENERGY_TRANSFER for t in transfer)
    assert all(t.out.chipset.contactor_command & OUTPUTS == OUTPUTS for t in transfer)
    assert all(t.inputs.chipset["contactor_feedback"] & OUTPUTS == OUTPUTS for t in transfer)
    assert signs[0] > 20 and signs[1] < -20 and signs[2] > 10 and signs[3] < -15
    assert abs(signs[4]) < 1.0 and signs[5] > 20 and signs[6] < -5
    crossings = [
        t.inputs.measured_current_a for t in transfer if abs(t.inputs.measured_current_a) < 1.5
    ]
    assert crossings  # the current went through zero, contactors closed
    # the module voltage follows the direction: EV max when charging, EV min discharging
    volts = {round(t.out.power.discharge_voltage_v) for t in transfer}
    assert volts == {300}
    finish(rig)


def test_discharge_refused_without_bidirectional_mode(rig: Rig) -> None:
    import pytest

    from bptd.session import SessionError

    s = rig.session()
    s.set_mode(False, "dynamic")
    with pytest.raises(SessionError) as exc:
        s.setpoint(-1000.0)
    assert exc.value.code == "not_allowed"
    refused = [e for e in s.events if isinstance(e, CommandEvent) and not e.accepted]
    assert refused and refused[0].code == "not_allowed"


def test_scheduled_mode_follows_ev_target(rig: Rig) -> None:
    s = rig.session()
    s.set_mode(False, "scheduled")
    rig.conn["ccs"].ev.target_current_a = 40.0
    plug_and_start(rig)
    rig.run(1.0)
    tick = rig.history["ccs"][-1]
    assert tick.out.power.requested_current_a == 40.0
    assert tick.out.power.charge_voltage_v == 420.0  # the EV target voltage
    rig.conn["ccs"].ev.target_current_a = 200.0  # beyond the station limit of 60 A
    rig.run(0.5)
    tick = rig.history["ccs"][-1]
    assert tick.out.power.requested_current_a == 60.0
    assert tick.out.hlc.power_limit_reached
    finish(rig)
    assert rig.states() == HAPPY


def test_series_allocation_sets_series_bit_and_splits_voltage(rig: Rig) -> None:
    s = rig.session()
    s.set_mode(False, "dynamic")
    s.setpoint(5000.0)
    plug_and_start(rig, [1, 2], "series")
    tick = rig.history["ccs"][-1]
    assert tick.out.chipset.contactor_command & 4
    assert s.allocation is not None and s.allocation.configuration == 2
    module_v = {m.voltage_setpoint_v for m in tick.out.modules.values()}
    assert module_v == {tick.out.power.charge_voltage_v / 2}
    finish(rig)


def test_stop_command_ramps_then_opens(rig: Rig) -> None:
    s = rig.session()
    s.setpoint(20000.0)
    plug_and_start(rig)
    rig.run(1.0)
    assert rig.conn["ccs"].current_a > 40
    s.stop()
    tick = rig.run_until("ccs", State.WELDING_DETECTION, 5.0)
    stopping = [t for t in rig.history["ccs"] if t.out.state is State.STOPPING]
    assert all(t.out.chipset.contactor_command & OUTPUTS == OUTPUTS for t in stopping)
    assert all(t.out.power.requested_current_a == 0.0 for t in stopping)
    assert not stopping[0].out.power.safety_stop
    assert abs(tick.inputs.measured_current_a) < 1.0
    rig.run_until("ccs", State.FINISHED, 5.0)
