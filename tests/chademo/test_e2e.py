"""CHAdeMO end to end: the daemon's virtual station with its CHAdeMO connector complete (the
charger driver and the virtual vehicle ECU on their own bus), driven only through the API."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import can
import pytest
from tests.daemon.helpers import wait_until

from bptd.chademo import frames as fr
from bptd.chademo.protocol import Stage
from bptd.sim.chademo_ev import EvStage
from station_rig import Station

TOLERANCE_W = 300.0  # as tests/daemon/test_e2e.py: module current accuracy and the last step
CHADEMO_DBC = str(fr.DBC_PATH)


def near(target: float) -> Any:
    return lambda p: p["power_w"] is not None and abs(p["power_w"] - target) <= TOLERANCE_W


def sim_connector(st: Station) -> dict[str, Any]:
    return st.call("sim", action="status")["connectors"]["chademo"]


def start_chademo(st: Station, modules: list[int], vehicle: str = "chademo_v2h", **params: Any
                  ) -> dict[str, Any]:  # fmt: skip
    """Plug, authorize, allocate, bidirectional, start: up to energy transfer."""
    st.call("sim", action="plug", connector="chademo", vehicle=vehicle, **params)
    st.wait_state("chademo", "connected")
    st.call("authorize", connector="chademo")
    alloc = st.call("allocate", connector="chademo", modules=modules, topology="parallel")
    st.call("set_mode", connector="chademo", bidirectional=True)
    st.call("start", connector="chademo")
    st.wait_state("chademo", "energy_transfer", 30.0)
    return alloc


def test_charge_and_v2h_discharge_on_api_setpoints(station: Station, tmp_path: Path) -> None:
    pair = station.daemon.chademo
    assert pair is not None
    log = tmp_path / "chademo.log"
    sniffer = pair.bus_spec.open()  # a candump of the CHAdeMO bus, as on can1
    logger = can.Logger(str(log))
    notifier = can.Notifier(sniffer, [logger])
    try:
        alloc = start_chademo(station, [1, 2])
        assert alloc["configuration"] == 5  # PARALLEL_CHA
        measured = {}
        for target in (8000.0, -5000.0):
            station.call("setpoint", connector="chademo", power_w=target)
            msg = station.wait("connector.chademo", near(target), 15.0, f"power {target} W")
            assert msg["state"] == "energy_transfer"
            measured[target] = msg["power_w"]
            assert msg["ev"]["bpt"] is True and msg["ev"]["phase"] == "charge_loop"
            # the vehicle sees it too: 0x109 / 0x208 carry the measured current
            assert sim_connector(station)["vehicle"]["current_a"] == pytest.approx(
                target / msg["voltage_v"], abs=1.5
            )
        assert pair.charger.stage is Stage.TRANSFER
        station.call("stop", connector="chademo")
        done = station.wait_state("chademo", "finished", 15.0)
        snap = sim_connector(station)
        assert not snap["outputs_closed"] and not snap["vehicle"]["contactors_closed"]
        # the vehicle's welding detection: <= 25 % within 1 s and <= 10 V within 2 s
        wait_until(lambda: pair.ev.logic.welding_history, 5.0, "welding detection")
        wait_until(lambda: sim_connector(station)["vehicle"]["cp"] == "B", 5.0, "then k off")
        check = pair.ev.logic.welding_history[-1]
        assert check.met, check.as_dict()
        assert check.voltage_v > 300 and check.below_10v_after_s is not None
        # the charger released the vehicle (d2, then d1) and ended its hlc session
        wait_until(lambda: pair.charger.stage is Stage.IDLE, 5.0, "charger idle")
        wait_until(lambda: pair.ev.stage is EvStage.ASLEEP, 5.0, "vehicle asleep")
        assert station.call("status", connector="chademo")["ev"]["present"] is False
    finally:
        notifier.stop()
        logger.stop()
        sniffer.shutdown()
    record = station.call("sessions", connector="chademo")["sessions"][-1]
    assert record["reason"] == "stop requested"
    assert record["energy_import_wh"] == pytest.approx(done["energy_import_wh"], abs=0.01)
    assert record["energy_export_wh"] > 0 and record["peak_discharge_power_w"] >= 5000 - 300
    print(f"\nCHAdeMO power: +8 kW -> {measured[8000.0]:.0f} W, -5 kW -> {measured[-5000.0]:.0f} W")

    # the candump decodes with cantools and our DBC, every frame by name
    result = subprocess.run(
        [sys.executable, "-m", "cantools", "decode", "--single-line", CHADEMO_DBC],
        stdin=log.open("rb"), capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    lines = result.stdout.decode().splitlines()
    names = {m.frame_id: m.name for m in fr.database().messages}
    seen: dict[str, int] = {}
    for line in lines:
        frame_id = int(line.split()[2].split("#")[0], 16) if "#" in line else None
        if frame_id in names:
            assert f":: {names[frame_id]}(" in line, line
            seen[names[frame_id]] = seen.get(names[frame_id], 0) + 1
    for name in ("EV_ChargeLimits", "EV_ChargeTime", "EV_Status", "EV_DischargeLimits",
                 "EVSE_Capability", "EVSE_Status", "EVSE_DischargeCapability"):  # fmt: skip
        assert seen.get(name, 0) > 20, (name, seen)
    assert "StatusCharging: 1" in result.stdout.decode()
    assert "PresentDischargeCurrent: 13 A" in result.stdout.decode()
    # every 100 ms: the median interval of the charger's 0x109 in the log
    stamps = [float(ln.split()[0].strip("()")) for ln in log.read_text().splitlines()
              if " 109#" in ln]  # fmt: skip
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
    assert 0.08 <= gaps[len(gaps) // 2] <= 0.12, gaps[len(gaps) // 2]


def test_vehicle_stops_at_its_target_soc(station: Station) -> None:
    start_chademo(station, [1])
    station.call("setpoint", connector="chademo", power_w=6000)
    station.wait("connector.chademo", near(6000), 15.0, "6 kW")
    station.call("sim", action="set_soc", connector="chademo", soc=0.9)
    station.wait_state("chademo", "finished", 15.0)
    record = station.call("sessions", connector="chademo")["sessions"][-1]
    assert record["reason"] == "vehicle requested stop (power_delivery_stop)"
    assert station.daemon.chademo.ev.logic.stop_reason == "target SoC"
    assert station.daemon.chademo.charger.protocol.last_stop_reason == "vehicle stop request"


def test_vehicle_frames_missing_stop_the_session(station: Station) -> None:
    pair = station.daemon.chademo
    start_chademo(station, [1])
    station.call("setpoint", connector="chademo", power_w=-4000)
    station.wait("connector.chademo", near(-4000), 15.0, "-4 kW")
    pair.ev.inject("silent")
    station.wait_state("chademo", "finished", 15.0)
    assert "missing" in pair.charger.protocol.last_stop_reason
    wait_until(lambda: pair.charger.stage is Stage.IDLE, 10.0, "charger idle")
    # the silent vehicle fell asleep with d1 and opened its contactors
    wait_until(lambda: not sim_connector(station)["vehicle"]["contactors_closed"], 5.0, "open")


def test_k_off_stops_the_session(station: Station) -> None:
    pair = station.daemon.chademo
    start_chademo(station, [2])
    station.call("setpoint", connector="chademo", power_w=5000)
    station.wait("connector.chademo", near(5000), 15.0, "5 kW")
    pair.ev.inject("k_off")
    station.wait_state("chademo", "finished", 15.0)
    record = station.call("sessions", connector="chademo")["sessions"][-1]
    assert record["reason"] == "vehicle left CP C/D"
    assert not sim_connector(station)["outputs_closed"]


def test_incompatible_battery_is_refused(station: Station) -> None:
    pair = station.daemon.chademo
    # an 800 V pack behind a CHAdeMO inlet: its target voltage is above the station's 500 V
    station.call("sim", action="plug", connector="chademo", vehicle="bpt800", kind="chademo")
    station.wait_state("chademo", "connected")
    station.call("authorize", connector="chademo")
    station.call("allocate", connector="chademo", modules=[1, 2])
    station.call("start", connector="chademo")
    wait_until(lambda: pair.charger.stage is Stage.ENDED, 10.0, "charger gave up")
    assert pair.charger.protocol.status()["incompatible"] is True
    # both sides check: the vehicle may see the 500 V offer before the charger's verdict
    assert pair.ev.logic.stop_reason in (
        "charger: battery incompatible",
        "charger offers 500 V only",
    )
    snap = sim_connector(station)
    assert not snap["outputs_closed"] and snap["inlet_voltage_v"] < 1.0
    assert station.call("status", connector="chademo")["state"] == "allocated"  # never energized
    station.call("stop", connector="chademo")
    station.wait_state("chademo", "finished")
    wait_until(lambda: pair.charger.stage is Stage.IDLE, 5.0, "charger idle")


def test_v2v_chademo_discharges_into_ccs(station: Station) -> None:
    """Configuration 9: CCS on module 2 charging from the CHAdeMO vehicle on module 1."""
    assert start_chademo(station, [1])["configuration"] == 7
    station.call("sim", action="plug", connector="ccs", vehicle="bpt")
    station.wait_state("ccs", "connected")
    station.call("authorize", connector="ccs")
    assert station.call("allocate", connector="ccs", modules=[2])["configuration"] == 9
    station.call("set_mode", connector="ccs", bidirectional=True)
    station.call("start", connector="ccs")
    station.wait_state("ccs", "energy_transfer", 30.0)
    station.call("setpoint", connector="chademo", power_w=-6000)
    station.call("setpoint", connector="ccs", power_w=5000)
    station.wait("connector.chademo", near(-6000), 15.0, "CHAdeMO -6 kW")
    station.wait("connector.ccs", near(5000), 15.0, "CCS +5 kW")
    for name in ("chademo", "ccs"):
        station.call("stop", connector=name)
    station.wait_state("chademo", "finished", 15.0)
