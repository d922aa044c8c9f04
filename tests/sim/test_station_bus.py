"""The virtual station on a python-can virtual bus, seen by an unrelated CANopen peer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import can
import canopen
import pytest

from bptd import emcy
from bptd.codes import DC_MINUS, DC_PLUS, F_HEARTBEAT, module_bits
from bptd.config import Config
from bptd.profile import Profile
from bptd.sim.probe import SimProbe
from bptd.sim.station import CAN_ERR_FLAG_BUSOFF, VirtualStation

NODES = {
    0x10: ("chipset", 0x00B7D100),
    0x20: ("chipset", 0x00B7D101),
    0x3E: ("dcdc", 0x00B7D201),
    0x3F: ("dcdc", 0x00B7D202),
    0x5E: ("afe", 0x00B7D301),
    0x5F: ("afe", 0x00B7D302),
}
PRODUCT = {"chipset": 1, "dcdc": 2, "afe": 3}


@pytest.fixture
def station(reference_config: Config, channel: str) -> Iterator[VirtualStation]:
    with VirtualStation(reference_config, f"virtual:{channel}") as st:
        yield st


@pytest.fixture
def probe(reference_config: Config, channel: str, station: VirtualStation) -> Iterator[SimProbe]:
    with SimProbe(reference_config, can.Bus(interface="virtual", channel=channel)) as p:
        yield p


class Collector(can.Listener):
    """Collects frames of interest from a sniffer bus and wakes waiters."""

    def __init__(self) -> None:
        self.frames: list[can.Message] = []
        self.cond = threading.Condition()

    def on_message_received(self, msg: can.Message) -> None:
        with self.cond:
            self.frames.append(msg)
            self.cond.notify_all()

    def wait(self, predicate: object, timeout: float) -> list[can.Message]:
        with self.cond:
            self.cond.wait_for(lambda: [m for m in self.frames if predicate(m)], timeout)
            return [m for m in self.frames if predicate(m)]


@pytest.fixture
def sniffer(channel: str) -> Iterator[Collector]:
    bus = can.Bus(interface="virtual", channel=channel)
    col = Collector()
    notifier = can.Notifier(bus, [col])
    yield col
    notifier.stop()
    bus.shutdown()


def test_every_node_answers_its_identity_and_sends_heartbeats(
    station: VirtualStation, channel: str, reference_profile: Profile, sniffer: Collector
) -> None:
    net = canopen.Network(can.Bus(interface="virtual", channel=channel)).connect()
    try:
        for node_id, (kind, serial) in NODES.items():
            node = canopen.RemoteNode(node_id, str(reference_profile[kind].eds))
            net.add_node(node)
            assert node.sdo[0x1018][1].raw == 0x00000B7D
            assert node.sdo[0x1018][2].raw == PRODUCT[kind]
            assert node.sdo[0x1018][4].raw == serial
            assert node.sdo[0x1000].raw == 0
        for node_id in NODES:
            hb = sniffer.wait(
                lambda m, i=node_id: m.arbitration_id == 0x700 + i and m.data[0] == 127, 2.0
            )
            assert hb, f"no PRE-OPERATIONAL heartbeat from 0x{node_id:02X}"
    finally:
        net.disconnect()


def _energise(station: VirtualStation, probe: SimProbe, mods: list[int]) -> None:
    probe.start()
    station.plug("ccs", "bpt", soc=0.5)
    station.ev("ccs", cp="C")
    probe.set(
        "chipset.ccs",
        cp_mode=1,
        pwm_duty_permille=50,
        contactor_command=module_bits(mods) | DC_PLUS | DC_MINUS,
    )
    station.ev("ccs", contactors=True)
    for m in mods:
        probe.set(f"afe.{m}", state_request=2, operating_mode=2)
        probe.set(f"dcdc.{m}", state_request=2, power_mode=2, voltage_setpoint_v=450)
    assert probe.wait_for(lambda: probe.get("chipset.ccs", "contactor_feedback") & 3 == 3, 2.0)


def test_a_module_driven_through_its_pdos_ramps_to_the_current(
    station: VirtualStation, probe: SimProbe
) -> None:
    _energise(station, probe, [1])
    samples: list[tuple[float, float, float]] = []
    node = probe.nodes["dcdc.1"]
    node.tpdo[1].add_callback(
        lambda m: samples.append(
            (m.timestamp, m["dcdc_status.dc_current_dA"].phys, m["dcdc_status.dc_voltage_dV"].phys)
        )
    )
    probe.set("dcdc.1", charge_current_limit_a=25.0)
    assert probe.wait_for(lambda: probe.get("dcdc.1", "dc_current_a") >= 24.9, 3.0)
    rising = [s for s in samples if 2.0 < s[1] < 23.0]
    assert len(rising) >= 2, "the ramp should be visible in the 50 ms TPDOs"
    (t0, i0, v), (t1, i1, _) = rising[0], rising[-1]
    rate = (i1 - i0) / (t1 - t0)
    assert rate == pytest.approx(30000.0 / v, rel=0.35)  # 30 kW/s at the battery voltage
    sim = station.snapshot()
    assert sim["connectors"]["ccs"]["current_a"] == pytest.approx(25.0, abs=0.1)
    assert probe.get("afe.1", "active_power_w") > 25.0 * v  # the grid also pays the losses


def test_devices_go_safe_when_the_supervisor_heartbeat_stops(
    station: VirtualStation, probe: SimProbe, sniffer: Collector
) -> None:
    _energise(station, probe, [1])
    probe.set("dcdc.1", charge_current_limit_a=10.0)
    assert probe.wait_for(lambda: probe.get("dcdc.1", "dc_current_a") > 9.9, 3.0)
    probe.stop_heartbeat()
    # consumer time 3000 ms on the chipset (EDS default) and the RPDO deadline (500 ms)
    got = sniffer.wait(
        lambda m: (
            m.arbitration_id == 0x80 + 0x3E
            and m.data[:2]
            in (emcy.RPDO_TIMEOUT.to_bytes(2, "little"), emcy.HEARTBEAT_LOST.to_bytes(2, "little"))
        ),
        5.0,
    )
    assert got, "the module sent no communication EMCY"
    got = sniffer.wait(
        lambda m: (
            m.arbitration_id == 0x80 + 0x10
            and m.data[:2] == emcy.HEARTBEAT_LOST.to_bytes(2, "little")
        ),
        5.0,
    )
    assert got, "the chipset did not report the supervisor heartbeat loss"
    snap = station.snapshot()
    assert snap["connectors"]["ccs"]["outputs_closed"] is False
    assert snap["connectors"]["ccs"]["faults"] & F_HEARTBEAT
    assert snap["modules"]["1"]["current_a"] == 0.0


def test_nmt_reset_reboots_a_node_with_a_boot_up(
    station: VirtualStation, probe: SimProbe, sniffer: Collector
) -> None:
    probe.start(["dcdc.1"])
    probe.nodes["dcdc.1"].nmt.state = "RESET"
    assert sniffer.wait(lambda m: m.arbitration_id == 0x73E and m.data[0] == 0, 2.0)
    assert sniffer.wait(lambda m: m.arbitration_id == 0x73E and m.data[0] == 127, 2.0)


def test_a_silent_module_comes_back_with_a_boot_up(
    station: VirtualStation, sniffer: Collector
) -> None:
    sniffer.wait(lambda m: m.arbitration_id == 0x73E, 2.0)
    station.fault("module_heartbeat_loss", module=1)
    with sniffer.cond:
        sniffer.frames.clear()
    assert not sniffer.wait(lambda m: m.arbitration_id in (0x73E, 0x75E), 0.5)
    assert sniffer.wait(lambda m: m.arbitration_id == 0x73F, 1.0)  # module 2 unaffected
    station.clear_fault("module_heartbeat_loss", module=1)
    assert sniffer.wait(lambda m: m.arbitration_id == 0x73E and m.data[0] == 0, 2.0)


def test_bus_off_is_signalled_as_an_error_frame(
    station: VirtualStation, sniffer: Collector
) -> None:
    station.fault("bus_off")
    frames = sniffer.wait(lambda m: m.is_error_frame, 2.0)
    assert frames and frames[0].arbitration_id & CAN_ERR_FLAG_BUSOFF


def test_overtemperature_injection_sends_the_derating_emcy(
    station: VirtualStation, sniffer: Collector
) -> None:
    station.fault("module_overtemp", module=2, temp_c=85)
    frames = sniffer.wait(lambda m: m.arbitration_id == 0x80 + 0x3F, 2.0)
    assert frames[0].data[:2] == emcy.OVER_TEMPERATURE.to_bytes(2, "little")
    assert frames[0].data[2] & emcy.REG_TEMPERATURE
    assert frames[0].data[3] == emcy.OVERTEMP_DERATING


def test_a_master_can_retime_a_tpdo_in_pre_operational(
    station: VirtualStation, channel: str, reference_profile: Profile, sniffer: Collector
) -> None:
    net = canopen.Network(can.Bus(interface="virtual", channel=channel)).connect()
    try:
        node = canopen.RemoteNode(0x3E, str(reference_profile["dcdc"].eds))
        net.add_node(node)
        node.tpdo.read()
        node.tpdo[1].event_timer = 10
        node.tpdo[1].save()
        assert node.sdo[0x1800][5].raw == 10
        node.nmt.state = "OPERATIONAL"
        frames = sniffer.wait(lambda m: m.arbitration_id == 0x1BE, 2.0)
        assert frames
        first = frames[0].timestamp
        assert sniffer.wait(lambda m: m.arbitration_id == 0x1BE and m.timestamp > first + 0.5, 3.0)
        ours = sniffer.wait(lambda m: m.arbitration_id == 0x1BE, 0.0)
        n = len([m for m in ours if first <= m.timestamp <= first + 0.5])
        assert n > 20, f"only {n} frames in 0.5 s at a 10 ms event timer"
    finally:
        net.disconnect()


def test_bad_sim_actions_are_refused_and_change_nothing(station: VirtualStation) -> None:
    from bptd.sim.station import SimActionError

    before = station.snapshot()["connectors"]
    for kwargs in (
        {"connector": "nope"},
        {"connector": "ccs", "vehicle": "tank"},
        {"connector": "ccs", "soc": 2.0},
        {"connector": "ccs", "capacity_wh": -1},
    ):
        with pytest.raises(SimActionError):
            station.action("plug", **kwargs)
    with pytest.raises(SimActionError):
        station.action("fault", kind="meteor")
    with pytest.raises(SimActionError):
        station.action("fault", kind="module_overtemp", module=7)
    with pytest.raises(SimActionError):
        station.action("teleport")
    after = station.snapshot()["connectors"]
    assert [c["vehicle"] for c in before.values()] == [c["vehicle"] for c in after.values()]
