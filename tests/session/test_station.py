"""Two connectors on disjoint modules (configurations 9/10), allocation rules, SUP codes."""

from __future__ import annotations

import pytest

from bptd.session import FaultReason, SessionError, State, Station, SupCode
from bptd.session.types import MODULE_OFF, OUTPUTS, SERIES

from .rig import Rig


def start(rig: Rig, name: str, modules: list[int], power_w: float) -> None:
    s = rig.session(name)
    s.set_mode(True, "dynamic")
    s.setpoint(power_w)
    rig.conn[name].ev.plugged = True
    rig.run_until(name, State.CONNECTED, 1.0)
    s.authorize()
    s.allocate(modules, "parallel")
    s.start()


def test_v2v_one_charging_one_discharging_then_module_lost(rig: Rig) -> None:
    rig.run(0.05)
    start(rig, "ccs", [2], 8000.0)
    start(rig, "chademo", [1], -8000.0)
    rig.run_until("ccs", State.ENERGY_TRANSFER, 15.0)
    rig.run_until("chademo", State.ENERGY_TRANSFER, 15.0)
    rig.run(1.0)
    assert rig.session("ccs").allocation.configuration == 9
    assert rig.session("chademo").allocation.configuration == 9
    assert rig.conn["ccs"].current_a > 15 and rig.conn["chademo"].current_a < -15
    ccs, cha = rig.history["ccs"][-1].out, rig.history["chademo"][-1].out
    assert set(ccs.modules) == {2} and set(cha.modules) == {1}
    assert ccs.chipset.contactor_command == OUTPUTS | 1 << 9
    assert cha.chipset.contactor_command == OUTPUTS | 1 << 8
    # module 1 drops off the bus: chademo goes safe, ccs keeps charging
    rig.modules[1].online = False
    rig.tick()
    cha = rig.history["chademo"][-1].out
    assert cha.fault is FaultReason.MODULE_LOST
    assert cha.chipset.contactor_command == 0  # the module is gone: open at once
    assert cha.power.safety_stop and cha.modules[1].state_request == MODULE_OFF
    rig.run(1.0)
    assert rig.session("ccs").state is State.ENERGY_TRANSFER
    assert rig.conn["ccs"].current_a > 15
    ccs_hist = rig.history["ccs"][-100:]
    assert all(t.out.chipset.contactor_command & OUTPUTS == OUTPUTS for t in ccs_hist)
    # reset refused while the module is still offline, accepted once it is back
    with pytest.raises(SessionError) as exc:
        rig.session("chademo").reset()
    assert exc.value.code == "not_allowed"
    rig.modules[1].online = True
    rig.run(1.0)
    rig.session("chademo").reset()
    rig.run(0.5)
    assert rig.session("chademo").state is State.CONNECTED
    assert rig.station.owners() == {2: "ccs"}


def test_module_owned_by_other_connector_refused(rig: Rig) -> None:
    rig.run(0.05)
    start(rig, "ccs", [1, 2], 5000.0)
    rig.conn["chademo"].ev.plugged = True
    rig.run(0.1)
    cha = rig.session("chademo")
    cha.authorize()
    with pytest.raises(SessionError) as exc:
        cha.allocate([1], "parallel")
    assert exc.value.code == "not_allowed"
    assert rig.station.owners() == {1: "ccs", 2: "ccs"}


def test_allocation_must_match_a_contactor_configuration(rig: Rig) -> None:
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.run(0.1)
    s = rig.session()
    with pytest.raises(SessionError) as exc:
        s.allocate([1], "parallel")
    assert exc.value.code == "wrong_state"  # not authorized yet
    s.authorize()
    for modules, topology, code in (
        ([3], "parallel", "invalid_argument"),
        ([], "parallel", "invalid_argument"),
        ([1, 1], "parallel", "invalid_argument"),
        ([1, 2], "ring", "invalid_argument"),
        ("12", "parallel", "invalid_argument"),
    ):
        with pytest.raises(SessionError) as exc:
            s.allocate(modules, topology)
        assert exc.value.code == code, modules
    result = s.allocate([1, 2], "series")
    assert result["configuration"] == 2
    assert rig.history["ccs"][-1].out.chipset.contactor_command == 0
    rig.tick()
    assert rig.history["ccs"][-1].out.chipset.contactor_command == SERIES | 3 << 8
    assert s.allocate([1], "parallel")["configuration"] == 3  # re-allocation while dead


def test_allocation_refused_while_output_live(rig: Rig) -> None:
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.run(0.1)
    s = rig.session()
    s.authorize()
    rig.conn["ccs"].hv_v = 400.0
    rig.conn["ccs"].ev.contactors = True  # the plant holds the inlet at battery voltage
    rig.tick()
    with pytest.raises(SessionError) as exc:
        s.allocate([1, 2], "parallel")
    assert exc.value.code == "wrong_state"
    rig.modules[1].online = False
    rig.conn["ccs"].ev.contactors = False
    rig.run(2.0)
    with pytest.raises(SessionError) as exc:
        s.allocate([1, 2], "parallel")
    assert exc.value.code == "not_allowed"  # module 1 offline


def test_sup_codes_drive_a_whole_session(rig: Rig) -> None:
    s = rig.session()
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.run_until("ccs", State.CONNECTED, 1.0)
    assert s.supervisor_request(SupCode.SUP0_IDLE)["state"] == "connected"
    s.supervisor_request(SupCode.SUP1_APPROBATION)
    assert s.state is State.AUTHORIZED
    rig.station.select_configuration(10)
    result = s.supervisor_request(SupCode.SUP3_ALLOCATIONDONE, bidirectional=True)
    assert result["modules"] == [1] and s.bidirectional
    s.setpoint(-6000.0)
    rig.run_until("ccs", State.ENERGY_TRANSFER, 15.0)
    rig.run(1.0)
    assert rig.conn["ccs"].current_a < -10
    s.supervisor_request(SupCode.SUP4_STOPCHARGE)
    rig.run_until("ccs", State.FINISHED, 10.0)
    s.supervisor_request(SupCode.SUP7_REARMWITHOUTUNPLUG)
    assert s.state is State.AUTHORIZED  # authorization kept
    s.supervisor_request(SupCode.SUP2_CANCELLATION)
    assert s.state is State.CONNECTED
    with pytest.raises(SessionError) as exc:
        s.supervisor_request(8)
    assert exc.value.code == "invalid_argument"
    with pytest.raises(SessionError) as exc:
        s.supervisor_request(SupCode.SUP6_RESET)
    assert exc.value.code == "wrong_state"


def test_sup5_terminate_then_rearm_needs_new_approbation(rig: Rig) -> None:
    s = rig.session()
    s.setpoint(5000.0)
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.run_until("ccs", State.CONNECTED, 1.0)
    s.supervisor_request(SupCode.SUP1_APPROBATION)
    s.supervisor_request(SupCode.SUP3_ALLOCATIONDONE)  # first free configuration: 1
    assert s.allocation is not None and s.allocation.configuration == 1
    rig.run_until("ccs", State.ENERGY_TRANSFER, 15.0)
    s.supervisor_request(SupCode.SUP5_TERMINATE)
    rig.run_until("ccs", State.FINISHED, 10.0)
    s.supervisor_request(SupCode.SUP7_REARMWITHOUTUNPLUG)
    assert s.state is State.CONNECTED


def test_sup6_reset_after_fault(rig: Rig) -> None:
    s = rig.session()
    rig.run(0.05)
    rig.conn["ccs"].ev.plugged = True
    rig.conn["ccs"].estop = True
    rig.run(0.1)
    assert s.fault is FaultReason.ESTOP
    rig.conn["ccs"].estop = False
    rig.run(0.1)
    s.supervisor_request(SupCode.SUP6_RESET)
    rig.run(0.5)
    assert s.state is State.CONNECTED


def test_station_unknown_connector_and_configuration(station: Station) -> None:
    with pytest.raises(SessionError) as exc:
        station["nope"]
    assert exc.value.code == "invalid_argument"
    with pytest.raises(SessionError):
        station.select_configuration(42)


def test_start_and_stop_in_wrong_states(rig: Rig) -> None:
    s = rig.session()
    for cmd in (s.start, s.stop, s.authorize, s.rearm):
        with pytest.raises(SessionError) as exc:
            cmd()
        assert exc.value.code == "wrong_state"
    with pytest.raises(SessionError) as exc:
        s.set_mode("yes", "dynamic")
    assert exc.value.code == "invalid_argument"
    with pytest.raises(SessionError) as exc:
        s.setpoint(float("nan"))
    assert exc.value.code == "invalid_argument"
    s.set_mode(False, "scheduled")
    with pytest.raises(SessionError) as exc:
        s.setpoint(1000.0)
    assert exc.value.code == "not_allowed"
    s.set_mode(False, "dynamic")
    assert s.setpoint(1e9)["clamped"]
