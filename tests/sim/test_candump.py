"""A candump log of the virtual station in a session decodes with `cantools decode` and our DBC."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import can

from bptd.codes import DC_MINUS, DC_PLUS, module_bits
from bptd.config import Config
from bptd.paths import DBC_DIR
from bptd.sim.probe import SimProbe
from bptd.sim.station import VirtualStation


def test_a_logged_session_decodes_with_cantools(
    reference_config: Config, channel: str, tmp_path: pathlib.Path
) -> None:
    log = tmp_path / "session.log"
    sniffer = can.Bus(interface="virtual", channel=channel)
    logger = can.Logger(str(log))
    notifier = can.Notifier(sniffer, [logger])
    try:
        with (
            VirtualStation(reference_config, f"virtual:{channel}") as station,
            SimProbe(reference_config, can.Bus(interface="virtual", channel=channel)) as probe,
        ):
            probe.start()
            station.plug("ccs", "bpt")
            station.ev("ccs", cp="C", contactors=True)
            probe.set(
                "chipset.ccs",
                cp_mode=1,
                pwm_duty_permille=50,
                contactor_command=module_bits([1]) | DC_PLUS | DC_MINUS,
            )
            probe.set("afe.1", state_request=2, operating_mode=2)
            probe.set(
                "dcdc.1",
                state_request=2,
                power_mode=2,
                voltage_setpoint_v=450,
                charge_current_limit_a=8,
            )
            assert probe.wait_for(lambda: probe.get("dcdc.1", "dc_current_a") > 7.9, 3.0)
    finally:
        notifier.stop()
        logger.stop()
        sniffer.shutdown()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cantools",
            "decode",
            "--single-line",
            str(DBC_DIR / "bptd-station.dbc"),
        ],
        stdin=log.open("rb"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) > 50
    decoded = [ln for ln in lines if " :: " in ln and "Unknown" not in ln]
    # every frame except SDO transfers is described by the DBC
    undecoded = [
        ln
        for ln in lines
        if ln not in decoded
        and not any(f" {cob:03X} " in ln or f" {cob:03X}#" in ln for cob in range(0x580, 0x680))
    ]
    assert not undecoded, undecoded[:5]
    assert any("DCDC1_TPDO1" in ln and "dc_current_dA: 8.0 A" in ln for ln in decoded)
    assert any("CHIPSET_ccs_RPDO1" in ln for ln in decoded)
    assert any("HB_" in ln for ln in decoded)
