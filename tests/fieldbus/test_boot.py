"""Boot of every node, identity refusal, re-boot after loss and after an NMT reset."""

from __future__ import annotations

import dataclasses
import time

import can
import pytest
from tests.fieldbus.helpers import KEYS, Loop, fast_config

from bptd.config import Config
from bptd.fieldbus import Fieldbus, NodeState
from bptd.sim import VirtualStation

VENDOR = 0x00000B7D


def test_all_nodes_boot_with_their_identities(running: Loop) -> None:
    fb = running.fb
    assert list(fb.states()) == list(KEYS)
    expected = {
        "chipset.ccs": (1, 0x00B7D100),
        "chipset.chademo": (1, 0x00B7D101),
        "dcdc.1": (2, 0x00B7D201),
        "afe.1": (3, 0x00B7D301),
        "dcdc.2": (2, 0x00B7D202),
        "afe.2": (3, 0x00B7D302),
    }
    for key, (product, serial) in expected.items():
        st = fb.node_status(key)
        assert st.state is NodeState.OPERATIONAL
        assert st.identity is not None
        assert (st.identity.vendor_id, st.identity.product_code) == (VENDOR, product)
        assert st.identity.serial == serial
        assert st.nmt_state == "OPERATIONAL"
        assert st.boots == 1
        # every node went absent -> booting -> operational, one event each
        assert [c.new for c in running.changes(key)] == [NodeState.BOOTING, NodeState.OPERATIONAL]


def test_tpdo_values_arrive_in_si_units(running: Loop) -> None:
    values = running.fb.values("dcdc.1")
    assert running.wait_until(lambda: "temperature_c" in values, 2.0)
    assert values["temperature_c"] == pytest.approx(25.0, abs=5.0)
    t = values.received_at("temperature_c")
    assert t is not None and values.age("temperature_c", time.monotonic()) < 2.0
    assert values.tpdo_received  # per-TPDO receive times


def test_serial_mismatch_is_refused_and_never_started(channel: str) -> None:
    station_cfg = fast_config()
    master_cfg = station_cfg.replace(
        modules=(
            dataclasses.replace(station_cfg.modules[0], serial_dcdc=0x00B7D2FF),
            *station_cfg.modules[1:],
        )
    )
    with VirtualStation(station_cfg, channel) as st, Fieldbus(master_cfg, bus=channel) as fb:
        loop = Loop(fb)
        others = [k for k in KEYS if k != "dcdc.1"]
        assert loop.wait_until(
            lambda: (
                fb.node_state("dcdc.1") is NodeState.REFUSED
                and all(fb.node_state(k) is NodeState.OPERATIONAL for k in others)
            ),
            10.0,
        ), fb.states()
        refused = loop.changes("dcdc.1")[-1]
        assert refused.new is NodeState.REFUSED
        assert "serial 0x00B7D201 != configured 0x00B7D2FF" in refused.reason
        loop.run_for(0.5)
        assert fb.node_state("dcdc.1") is NodeState.REFUSED
        assert st.nodes["dcdc.1"].node.nmt.state == "PRE-OPERATIONAL"  # never started
        assert not st.nodes["dcdc.1"].rpdo_seen  # no RPDO ever reached it


def test_module_heartbeat_loss_is_detected_and_the_module_reboots(
    running: Loop, station: VirtualStation, config: Config, record_property: object
) -> None:
    fb = running.fb
    applied = time.monotonic()
    station.fault(kind="module_heartbeat_loss", module=1)
    assert running.wait_until(
        lambda: (
            fb.node_state("dcdc.1") is NodeState.LOST and fb.node_state("afe.1") is NodeState.LOST
        ),
        5.0,
    )
    lost = running.changes("dcdc.1")[-1]
    latency = lost.at - applied
    timeout = config.can.consumer_factor * config.module(1).heartbeat_ms / 1000.0
    record_property("heartbeat_loss_latency_s", round(latency, 4))  # type: ignore[operator]
    print(
        f"module heartbeat loss reported after {latency * 1000:.0f} ms "
        f"(consumer time {timeout * 1000:.0f} ms)"
    )
    assert latency <= timeout + 0.5
    assert "no heartbeat" in lost.reason
    assert fb.node_state("dcdc.2") is NodeState.OPERATIONAL  # the others keep running

    station.clear_fault(kind="module_heartbeat_loss", module=1)
    assert running.wait_until(running.all_operational, 10.0), fb.states()
    news = [c.new for c in running.changes("dcdc.1")]
    assert news[-3:] == [NodeState.LOST, NodeState.BOOTING, NodeState.OPERATIONAL]
    assert "boot-up" in running.changes("dcdc.1")[-2].reason
    assert fb.node_status("dcdc.1").boots == 2


def test_nmt_reset_from_outside_reboots_and_clears_setpoints(
    running: Loop, sniffer: can.BusABC
) -> None:
    fb = running.fb
    fb.set("dcdc.1", voltage_setpoint_v=400.0, charge_current_limit_a=10.0)
    assert fb.staged("dcdc.1")["voltage_setpoint_v"] == 400.0
    sniffer.send(can.Message(arbitration_id=0x000, data=[0x81, 0x3E], is_extended_id=False))
    assert running.wait_until(lambda: fb.node_state("dcdc.1") is NodeState.BOOTING, 5.0)
    assert "boot-up received (device reset)" in running.changes("dcdc.1")[-1].reason
    assert fb.staged("dcdc.1")["voltage_setpoint_v"] == 0.0  # safe defaults, not stale values
    assert running.wait_until(lambda: fb.node_state("dcdc.1") is NodeState.OPERATIONAL, 10.0)
    assert fb.node_status("dcdc.1").boots == 2
    assert fb.staged("dcdc.1")["charge_current_limit_a"] == 0.0
