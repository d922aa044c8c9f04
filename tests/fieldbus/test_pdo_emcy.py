"""EMCY decoding, RPDO policy (on change, inhibit, refresh), device deadlines, set() checks."""

from __future__ import annotations

import time

import can
import pytest
from tests.fieldbus.helpers import Loop

from bptd import emcy
from bptd.codes import F_HEARTBEAT, F_RPDO_TIMEOUT
from bptd.fieldbus import EmcyReceived, NodeState
from bptd.sim import VirtualStation

DCDC1_RPDO1 = 0x23E


def test_overtemperature_emcy_is_decoded(running: Loop, station: VirtualStation) -> None:
    station.fault(kind="module_overtemp", module=1, temp_c=85)

    def overtemp() -> list[EmcyReceived]:
        return [
            e
            for e in running.of(EmcyReceived)
            if isinstance(e, EmcyReceived) and e.code == emcy.OVER_TEMPERATURE
        ]

    assert running.wait_until(lambda: bool(overtemp()), 5.0)
    ev = overtemp()[0]
    assert (ev.key, ev.node_id) == ("dcdc.1", 0x3E)
    assert ev.text == "over-temperature"
    assert ev.detail in ("derating warning", "trip")
    assert ev.register & emcy.REG_TEMPERATURE
    assert "temperature" in ev.register_text
    assert "EMCY 0x4210 over-temperature" in str(ev)
    assert emcy.OVER_TEMPERATURE in running.fb.node_status("dcdc.1").emcy_active


def test_short_emcy_frame_is_not_dropped(running: Loop, sniffer: can.BusABC) -> None:
    sniffer.send(
        can.Message(
            arbitration_id=0x80 + 0x5E, data=bytes([0x10, 0x32, 0x05]), is_extended_id=False
        )
    )
    assert running.wait_until(lambda: bool(running.of(EmcyReceived)), 5.0)
    ev = running.of(EmcyReceived)[0]
    assert isinstance(ev, EmcyReceived)
    assert (ev.key, ev.code, ev.register, ev.short) == ("afe.1", 0x3210, 0x05, True)
    assert ev.text == "DC over-voltage"


def test_rpdo_on_change_respects_inhibit_and_refresh(running: Loop, sniffer: can.BusABC) -> None:
    fb = running.fb
    t0 = time.monotonic() + 1.0  # a refresh is due for every RPDO: all go out, same time
    fb.flush(t0)
    while sniffer.recv(0) is not None:
        pass
    inhibit = fb.config.can.rpdo_inhibit_ms / 1000
    refresh = fb.config.can.rpdo_refresh_ms / 1000
    assert inhibit < refresh
    fb.set("dcdc.1", voltage_setpoint_v=400.0)
    assert fb.flush(t0 + 0.001) == 0  # changed, but inside the inhibit time
    assert fb.flush(t0 + inhibit + 0.001) == 1  # the changed RPDO, alone
    assert fb.flush(t0 + inhibit + 0.002) == 0  # nothing changed, refresh not due
    fb.set("dcdc.1", voltage_setpoint_v=400.0)  # same value: not a change
    assert fb.flush(t0 + inhibit + 0.003) == 0
    # refresh: every RPDO of every operational node, except the one sent after the inhibit
    total = sum(len(fb._pdos[k].rpdos) for k in fb.node_keys())
    assert fb.flush(t0 + refresh + 0.001) == total - 1
    frames = []
    while (msg := sniffer.recv(0.5)) is not None:
        frames.append(msg)
        if len(frames) == total:
            break
    ours = [m for m in frames if m.arbitration_id == DCDC1_RPDO1]
    assert len(ours) == 1
    assert int.from_bytes(ours[0].data[2:4], "little") == 4000  # 400.0 V in 0.1 V


def test_out_of_range_set_raises_and_changes_nothing(running: Loop) -> None:
    fb = running.fb
    fb.set("dcdc.1", voltage_setpoint_v=300.0)
    before = fb.staged("dcdc.1")
    with pytest.raises(ValueError, match="charge_current_limit_a"):
        fb.set("dcdc.1", voltage_setpoint_v=400.0, charge_current_limit_a=1e9)
    assert fb.staged("dcdc.1") == before
    with pytest.raises(ValueError, match="not a PDO command"):
        fb.set("dcdc.1", dc_voltage_v=1.0)  # a status value
    with pytest.raises(KeyError):
        fb.set("dcdc.1", no_such_name=1.0)
    with pytest.raises(KeyError, match="nodes"):
        fb.set("dcdc.9", voltage_setpoint_v=1.0)


def test_device_rpdo_deadline_never_trips_while_the_master_runs(
    running: Loop, station: VirtualStation
) -> None:
    running.run_for(1.5)  # three RPDO deadlines (500 ms)
    assert running.all_operational()
    codes = {e.code for e in running.of(EmcyReceived) if isinstance(e, EmcyReceived)}
    assert emcy.RPDO_TIMEOUT not in codes
    assert emcy.HEARTBEAT_LOST not in codes
    for name, c in station.snapshot()["connectors"].items():
        assert not c["faults"] & (F_RPDO_TIMEOUT | F_HEARTBEAT), name
    assert all(n.rpdo_seen for n in station.nodes.values())


def test_closing_the_master_stops_its_heartbeat(running: Loop, station: VirtualStation) -> None:
    assert not station.snapshot()["connectors"]["ccs"]["faults"] & F_HEARTBEAT
    running.fb.close()
    running.fb.close()  # idempotent
    deadline = time.monotonic() + 5.0
    faults = 0
    while time.monotonic() < deadline:
        faults = station.snapshot()["connectors"]["ccs"]["faults"]
        if faults & F_HEARTBEAT:
            break
        time.sleep(0.02)
    assert faults & F_HEARTBEAT  # the chipset's consumer (0x1016) saw the supervisor go
    assert running.fb.node_state("chipset.ccs") is NodeState.OPERATIONAL  # last known
