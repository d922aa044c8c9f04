"""Every fault path: reason, safe outputs, and reset only once the cause is gone."""

from __future__ import annotations

import pytest

from bptd.session import FaultRaised, FaultReason, Notice, SessionError, State
from bptd.session.types import MODULE_OFF, OUTPUTS

from .rig import Rig
from .test_flows import plug_and_start


def plug(rig: Rig, modules: list[int] | None = None) -> None:
    s = rig.session()
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.run_until("ccs", State.CONNECTED, 1.0)
    s.authorize()
    s.allocate(modules or [1, 2], "parallel")
    s.start()


def faults(rig: Rig, name: str = "ccs") -> list[FaultReason]:
    return [e.reason for e in rig.events(name) if isinstance(e, FaultRaised)]


def charging(rig: Rig, power_w: float = 20000.0) -> None:
    s = rig.session()
    s.set_mode(True, "dynamic")
    s.setpoint(power_w)
    plug_and_start(rig)
    rig.run(1.0)
    assert abs(rig.conn["ccs"].current_a) > 20


def assert_safe(rig: Rig, name: str = "ccs") -> None:
    out = rig.history[name][-1].out
    assert out.state is State.FAULT
    assert out.chipset.contactor_command == 0
    assert out.power.requested_current_a == 0.0
    assert all(m.state_request == MODULE_OFF for m in out.modules.values())


def under_load(rig: Rig) -> bool:
    return any(isinstance(e, Notice) and e.kind == "opened_under_load" for e in rig.events())


def test_insulation_fault_in_cable_check(rig: Rig) -> None:
    rig.conn["ccs"].insulation_ohm = 50e3  # 50 ohm/V
    plug(rig)
    rig.run_until("ccs", State.FAULT, 10.0)
    assert faults(rig) == [FaultReason.INSULATION_FAULT]
    rig.run(2.0)
    assert_safe(rig)
    assert rig.history["ccs"][-1].out.hlc.isolation == "fault"
    # the cause is the insulation; once the IMD is off the next cable check re-tests it
    rig.session().reset()
    rig.run(0.5)
    assert rig.session().state is State.CONNECTED


def test_imd_warning_continues_with_a_notice(rig: Rig) -> None:
    rig.conn["ccs"].insulation_ohm = 300e3  # 300 ohm/V: warning
    rig.session().setpoint(5000.0)
    plug_and_start(rig)
    assert any(isinstance(e, Notice) and e.kind == "imd_warning" for e in rig.events())
    assert rig.history["ccs"][-1].out.hlc.isolation == "warning"


def test_imd_timeout_without_a_result(rig: Rig) -> None:
    rig.conn["ccs"].imd_silent = True
    plug(rig)
    rig.run_until("ccs", State.FAULT, 40.0)
    assert faults(rig) == [FaultReason.IMD_TIMEOUT]
    assert_safe(rig)


def test_precharge_timeout(rig: Rig) -> None:
    rig.conn["ccs"].ev.battery_v = 900.0  # beyond what the output reaches (450 V EV max)
    plug(rig)
    rig.run_until("ccs", State.PRECHARGE, 5.0)
    t0 = rig.now
    rig.run_until("ccs", State.FAULT, 10.0)
    assert faults(rig) == [FaultReason.PRECHARGE_TIMEOUT]
    assert 7.0 <= rig.now - t0 <= 7.1
    rig.run(2.0)
    assert_safe(rig)
    precharge = [t for t in rig.history["ccs"] if t.out.state is State.PRECHARGE]
    assert all(t.out.power.phase_current_limit_a == 2.0 for t in precharge)
    rig.session().reset()
    rig.run(0.5)
    assert rig.session().state is State.CONNECTED


def test_ev_unplugged_during_transfer_opens_at_once(rig: Rig) -> None:
    charging(rig)
    rig.conn["ccs"].ev.plugged = False
    rig.conn["ccs"].ev.contactors = False
    rig.tick()
    out = rig.history["ccs"][-1].out
    assert out.state is State.FAULT and out.fault is FaultReason.EV_UNPLUGGED
    assert out.chipset.contactor_command == 0 and out.power.safety_stop
    assert under_load(rig)
    rig.run(2.0)
    rig.session().reset()
    rig.run(0.5)
    assert rig.session().state is State.IDLE


def test_cp_lost_during_transfer(rig: Rig) -> None:
    charging(rig)
    rig.conn["ccs"].cp_override = 4  # state E
    rig.run(2.0)
    assert faults(rig) == [FaultReason.CP_LOST]
    assert_safe(rig)
    with pytest.raises(SessionError) as exc:
        rig.session().reset()
    assert exc.value.code == "not_allowed"
    rig.conn["ccs"].cp_override = None
    rig.run(0.05)
    rig.session().reset()
    rig.run(0.5)
    assert rig.session().state is State.CONNECTED


def test_estop_reset_refused_while_pressed(rig: Rig) -> None:
    charging(rig)
    rig.conn["ccs"].estop = True
    rig.run(2.0)
    assert faults(rig)[0] is FaultReason.ESTOP
    assert_safe(rig)
    with pytest.raises(SessionError) as exc:
        rig.session().reset()
    assert exc.value.code == "not_allowed"
    rig.conn["ccs"].estop = False
    rig.run(0.05)
    rig.session().reset()
    rig.run(0.05)
    assert rig.history["ccs"][-1].out.chipset.fault_reset == 1
    rig.run(0.5)
    assert rig.session().state is State.CONNECTED
    assert rig.conn["ccs"].faults == 0


def test_chipset_lost(rig: Rig) -> None:
    charging(rig)
    rig.conn["ccs"].chipset_online = False
    rig.tick()
    assert rig.session().fault is FaultReason.CHIPSET_LOST
    with pytest.raises(SessionError):
        rig.session().reset()
    rig.conn["ccs"].chipset_online = True
    rig.run(2.0)
    rig.session().reset()
    rig.run(0.5)
    assert rig.session().state is State.CONNECTED


def test_contactor_feedback_mismatch(rig: Rig) -> None:
    rig.conn["ccs"].stuck_open = OUTPUTS
    plug(rig)
    rig.run_until("ccs", State.FAULT, 3.0)
    assert faults(rig) == [FaultReason.CONTACTOR_MISMATCH]
    assert_safe(rig)


def test_ev_limits_violated(rig: Rig) -> None:
    rig.conn["ccs"].ev.max_charge_a = 125.0
    charging(rig, 20000.0)
    rig.conn["ccs"].ev.max_charge_a = 10.0  # the EV lowers its limit; the plant ignores it
    rig.conn["ccs"].current_a = 50.0
    rig.conn["ccs"].limits = None  # and the plant follows no station limit either
    rig.run_until("ccs", State.FAULT, 1.0)
    assert faults(rig) == [FaultReason.EV_LIMITS_VIOLATED]
    rig.run(0.5)
    assert_safe(rig)


def test_stop_timeout_opens_under_load(rig: Rig) -> None:
    charging(rig)
    s = rig.session()
    s.stop()
    # a plant whose current does not fall: freeze it
    rig.conn["ccs"].ev.contactors = True
    for _ in range(600):
        rig.conn["ccs"].current_a = 40.0
        rig.tick()
        if s.state is State.FAULT:
            break
    assert faults(rig) == [FaultReason.STOP_TIMEOUT]
    assert under_load(rig)
    assert rig.history["ccs"][-1].out.chipset.contactor_command == 0


def test_welding_detected(rig: Rig) -> None:
    charging(rig)
    rig.conn["ccs"].welded = 1  # DC+ welded
    rig.conn["ccs"].ev.wants_stop = True
    rig.run_until("ccs", State.FAULT, 10.0)
    assert faults(rig) == [FaultReason.WELDING_DETECTED]
    with pytest.raises(SessionError) as exc:
        rig.session().reset()
    assert exc.value.code == "not_allowed"


def test_module_overtemp_derate_then_trip(rig: Rig) -> None:
    charging(rig)
    rig.modules[1].derating = True
    rig.run(0.2)
    assert rig.session().state is State.ENERGY_TRANSFER
    assert [e.kind for e in rig.events() if isinstance(e, Notice)] == ["module_derating"]
    rig.modules[1].tripped = True
    rig.tick()
    out = rig.history["ccs"][-1].out
    assert out.fault is FaultReason.MODULE_OVERTEMP
    # not a safety stop: ramp down, contactors stay until the current is below 1 A
    assert not out.power.safety_stop and out.chipset.contactor_command & OUTPUTS
    hist = rig.history["ccs"]
    rig.run(2.0)
    assert_safe(rig)
    assert not under_load(rig)
    with pytest.raises(SessionError):
        rig.session().reset()
    rig.modules[1].tripped = False
    rig.run(0.05)
    rig.session().reset()
    rig.run(0.5)
    assert rig.session().state is State.CONNECTED and hist


def test_module_fault_word(rig: Rig) -> None:
    charging(rig)
    rig.modules[2].faulted = True
    rig.tick()
    assert rig.session().fault is FaultReason.MODULE_FAULT
    rig.run(0.5)
    assert_safe(rig)


def test_reset_refused_outside_fault(rig: Rig) -> None:
    with pytest.raises(SessionError) as exc:
        rig.session().reset()
    assert exc.value.code == "wrong_state"
