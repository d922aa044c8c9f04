"""``make demo``: a bidirectional session on the in-process virtual station, printed live.

The story runs on a python-can ``virtual`` bus with real CANopen traffic between the
virtual devices and a minimal peer (:class:`bptd.sim.probe.SimProbe`) that plays the
supervisor's part step by step: control pilot, routing and output contactors, insulation
test, precharge, charge at +10 kW, discharge at -10 kW, stop and welding check.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid

import can

from bptd.codes import DC_MINUS, DC_PLUS, module_bits
from bptd.config import Config
from bptd.sim.probe import SimProbe
from bptd.sim.station import VirtualStation

PWM_5_PERCENT = 50


def _say(t0: float, text: str) -> None:
    sys.stdout.write(f"[{time.monotonic() - t0:6.2f} s] {text}\n")
    sys.stdout.flush()


def run_demo(config: Config, power_w: float = 10000.0, hold_s: float = 2.0) -> int:
    channel = f"bptd-demo-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    station = VirtualStation(config, f"virtual:{channel}")
    probe = SimProbe(config, can.Bus(interface="virtual", channel=channel))
    pause = threading.Event()
    try:
        station.start()
        probe.connect()
        probe.start()
        conn = config.connectors[0].name
        chip = f"chipset.{conn}"
        mods = [m.n for m in config.modules]
        _say(t0, f"virtual station up: {len(station.nodes)} CANopen nodes on {channel}")
        station.plug(conn, "bpt")
        probe.wait_for(lambda: probe.get(chip, "cp_state") == 1, 2.0)
        _say(
            t0,
            f"BPT vehicle plugged at '{conn}': CP state B, {probe.get(chip, 'cp_voltage_v'):.0f} V",
        )
        probe.set(
            chip,
            cp_mode=1,
            pwm_duty_permille=PWM_5_PERCENT,
            lock_command=1,
            contactor_command=module_bits(mods),
        )
        for m in mods:
            probe.set(f"afe.{m}", state_request=2, operating_mode=2)
            probe.set(
                f"dcdc.{m}",
                state_request=2,
                power_mode=2,
                voltage_setpoint_v=0,
                charge_current_limit_a=0,
                discharge_current_limit_a=0,
            )
        probe.wait_for(lambda: probe.get(chip, "lock_state") == 1, 2.0)
        _say(t0, f"5 % PWM on, connector locked, modules {mods} routed in parallel")
        station.ev(conn, cp="C")
        probe.set(chip, contactor_command=module_bits(mods) | DC_PLUS | DC_MINUS, imd_command=1)
        for m in mods:
            probe.set(f"dcdc.{m}", voltage_setpoint_v=500, charge_current_limit_a=2)
        ok = probe.wait_for(
            lambda: probe.get(chip, "imd_state") == 2 and probe.get(chip, "hv_voltage_v") > 450, 5.0
        )
        _say(
            t0,
            f"cable check at {probe.get(chip, 'hv_voltage_v'):.0f} V: insulation "
            f"{probe.get(chip, 'insulation_kohm'):.0f} kOhm -> {'valid' if ok else 'FAILED'}",
        )
        battery_v = station.snapshot()["connectors"][conn]["vehicle"]["ocv_v"]
        for m in mods:
            probe.set(f"dcdc.{m}", voltage_setpoint_v=round(battery_v, 1))
        probe.wait_for(lambda: abs(probe.get(chip, "hv_voltage_v") - battery_v) < 5, 5.0)
        _say(
            t0,
            f"precharge: output {probe.get(chip, 'hv_voltage_v'):.1f} V matches the "
            f"battery {battery_v:.1f} V; the vehicle closes its contactors",
        )
        station.ev(conn, contactors=True)
        for target in (power_w, -power_w, power_w / 2, 0.0):
            per_module = abs(target) / len(mods) / battery_v
            for m in mods:
                if target >= 0:
                    probe.set(
                        f"dcdc.{m}",
                        voltage_setpoint_v=450,
                        charge_current_limit_a=per_module,
                        discharge_current_limit_a=0,
                    )
                else:
                    probe.set(
                        f"dcdc.{m}",
                        voltage_setpoint_v=300,
                        charge_current_limit_a=0,
                        discharge_current_limit_a=per_module,
                    )
            _say(t0, f"setpoint {target / 1000:+.1f} kW")
            end = time.monotonic() + hold_s
            while time.monotonic() < end:
                pause.wait(0.5)
                v = sum(probe.get(f"dcdc.{m}", "dc_voltage_v") for m in mods) / len(mods)
                i = sum(probe.get(f"dcdc.{m}", "dc_current_a") for m in mods)
                p_ac = sum(probe.get(f"afe.{m}", "active_power_w") for m in mods)
                _say(
                    t0,
                    f"   DC {v:6.1f} V {i:+7.2f} A = {v * i / 1000:+6.2f} kW   "
                    f"AC {p_ac / 1000:+6.2f} kW",
                )
        probe.wait_for(
            lambda: abs(sum(probe.get(f"dcdc.{m}", "dc_current_a") for m in mods)) < 0.5, 3.0
        )
        station.ev(conn, contactors=False, cp="B")
        probe.set(chip, contactor_command=module_bits(mods), imd_command=0)
        for m in mods:
            probe.set(f"dcdc.{m}", state_request=0)
        probe.wait_for(
            lambda: probe.get(chip, "contactor_feedback") & (DC_PLUS | DC_MINUS) == 0, 2.0
        )
        _say(
            t0,
            "stopped: current below 0.5 A, output contactors open (feedback confirms: not welded)",
        )
        probe.set(chip, contactor_command=0, cp_mode=0, lock_command=0)
        station.unplug(conn)
        snap = station.snapshot()["connectors"][conn]
        _say(
            t0,
            f"energy to vehicle {snap['energy_to_vehicle_wh']:.1f} Wh, from vehicle "
            f"{snap['energy_from_vehicle_wh']:.1f} Wh",
        )
        return 0
    finally:
        probe.close()
        station.close()
