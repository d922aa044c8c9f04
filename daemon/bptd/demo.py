"""``make demo``: a whole bidirectional session through the daemon, printed as it happens.

The daemon runs in-process with the virtual station (``bptd run --sim``) on a private
virtual CAN bus, sockets and records in a temporary directory. The story is told through
the public API only, exactly as a lab script or a frontend would drive it: plug a BPT
vehicle (the virtual EVCC plays its ISO 15118 side), authorize, allocate both modules in
parallel, start, +10 kW, -10 kW, several direction changes, a module over-temperature
derating, stop, unplug, energy totals. Session events from the telemetry stream are
printed between the steps.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bptd.api.client import Client, Subscriber
from bptd.config import Config
from bptd.daemon.app import Daemon, DaemonOptions


class Story:
    def __init__(self, client: Client, telemetry: Subscriber, connector: str) -> None:
        self.client = client
        self.telemetry = telemetry
        self.connector = connector
        self.t0 = time.monotonic()
        self.last: dict[str, dict[str, Any]] = {}

    def say(self, text: str) -> None:
        sys.stdout.write(f"[{time.monotonic() - self.t0:6.2f} s] {text}\n")
        sys.stdout.flush()

    def call(self, cmd: str, **args: Any) -> Any:
        return self.client.call(cmd, **args)

    def _event(self, e: dict[str, Any]) -> None:
        kind = e.get("kind")
        if kind == "state_changed":
            self.say(f"   event: {e['connector']} {e['from']} -> {e['to']} ({e['text']})")
        elif kind in ("fault", "notice"):
            what = e.get("reason") or e.get("notice")
            self.say(f"   event: {e.get('connector', '')} {kind} {what}: {e.get('text', '')}")
        elif kind in ("emcy", "bus_fault"):
            self.say(f"   event: {e.get('node', 'bus')} {kind}: {e.get('text')} {e.get('detail')}")

    def wait(
        self, topic: str, pred: Callable[[dict[str, Any]], bool], timeout_s: float = 15.0
    ) -> dict[str, Any]:
        """Print events while waiting for a telemetry message on ``topic`` that fits."""
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            msg = self.telemetry.recv(remaining)
            if msg is None:
                break
            t, p = msg
            if t == "event":
                self._event(p)
                continue
            self.last[t] = p
            if t == topic and pred(p):
                return p
        raise TimeoutError(f"{topic}: condition not met within {timeout_s} s")

    def measure(self, hold_s: float) -> None:
        """Print the connector and module measurements for ``hold_s`` seconds."""
        end = time.monotonic() + hold_s
        next_print = 0.0
        while time.monotonic() < end:
            p = self.wait(f"connector.{self.connector}", lambda p: True, 5.0)
            if time.monotonic() >= next_print:
                mods = [self.last.get(f"module.{n}", {}) for n in p["modules"]]
                ac = sum(m.get("ac_power_w") or 0.0 for m in mods)
                temps = "/".join(f"{m.get('temperature_c') or 0:.0f}" for m in mods)
                binding = "binding_charge" if p["power_w"] >= 0 else "binding_discharge"
                self.say(
                    f"   DC {p['voltage_v']:6.1f} V {p['current_a']:+7.2f} A = "
                    f"{p['power_w'] / 1000:+6.2f} kW   AC {ac / 1000:+6.2f} kW   "
                    f"modules {temps} degC   limit {p['limits'][binding]}"
                )
                next_print = time.monotonic() + 0.5

    def setpoint(self, power_w: float, hold_s: float) -> None:
        r = self.call("setpoint", connector=self.connector, power_w=power_w)
        self.say(f"setpoint {power_w / 1000:+.1f} kW (available now {r['available_power_w']} W)")
        self.wait(
            f"connector.{self.connector}",
            lambda p: abs((p["power_w"] or 0.0) - power_w) < 300.0,
            10.0,
        )
        self.measure(hold_s)


def run_demo(config: Config, power_w: float = 10000.0, hold_s: float = 1.5) -> int:
    with tempfile.TemporaryDirectory(prefix="bptd-demo-") as tmp:
        opts = DaemonOptions(
            sim=True,
            control=f"ipc://{tmp}/control.sock",
            telemetry=f"ipc://{tmp}/telemetry.sock",
            records_dir=f"{tmp}/records",
        )
        daemon = Daemon(config, opts).start_thread()
        try:
            if not daemon.ready.wait(20.0):
                sys.stderr.write("bptd demo: the virtual station did not boot\n")
                return 1
            assert opts.control is not None and opts.telemetry is not None
            with Client(opts.control, timeout_s=10.0) as client, Subscriber(opts.telemetry) as sub:
                return _story(Story(client, sub, config.connectors[0].name), power_w, hold_s)
        finally:
            daemon.stop_thread()


def _story(s: Story, power_w: float, hold_s: float) -> int:
    conn = s.connector
    st = s.call("status")["station"]
    s.say(f"bptd up: {st['nodes_operational']}/{st['nodes_total']} CANopen nodes operational "
          "on the virtual station")  # fmt: skip
    s.call("sim", action="plug", connector=conn, vehicle="bpt")
    p = s.wait(f"connector.{conn}", lambda p: p["state"] == "connected")
    s.say(f"BPT vehicle plugged at '{conn}': CP state {p['cp_state']}")
    s.call("authorize", connector=conn)
    r = s.call("allocate", connector=conn, modules=[1, 2], topology="parallel")
    s.say(f"authorized; modules {r['modules']} allocated in parallel "
          f"(contactor configuration {r['configuration_name']})")  # fmt: skip
    s.call("set_mode", connector=conn, bidirectional=True, control="dynamic")
    s.call("start", connector=conn)
    s.say("bidirectional dynamic mode; start: the vehicle runs its cable check and precharge")
    s.wait(f"connector.{conn}", lambda p: p["state"] == "energy_transfer", 30.0)
    s.say("energy transfer: the vehicle closed its contactors")
    s.setpoint(power_w, hold_s)
    s.setpoint(-power_w, hold_s)
    for target in (power_w / 2, -power_w / 2, power_w):
        s.setpoint(target, hold_s / 2)
    s.say("module 1 runs hot (injected over-temperature): it derates, module 2 takes over")
    s.call("setpoint", connector=conn, power_w=2 * power_w)
    s.call("sim", action="fault", kind="module_overtemp", module=1, temp_c=90.0)
    s.wait("module.1", lambda p: bool(p["derating"]), 10.0)
    s.measure(2 * hold_s)
    s.call("sim", action="clear_fault", kind="module_overtemp", module=1)
    s.call("stop", connector=conn)
    s.say("stop: ramp to 0 A, contactors open, welding check")
    p = s.wait(f"connector.{conn}", lambda p: p["state"] == "finished", 20.0)
    s.say(f"finished: output {p['output_voltage_v']} V, contactor feedback "
          f"{int(p['contactor_feedback'] or 0):#x} (not welded)")  # fmt: skip
    s.call("sim", action="unplug", connector=conn)
    s.wait(f"connector.{conn}", lambda p: p["state"] == "idle")
    rec = s.call("sessions")["sessions"][-1]
    s.say(f"vehicle unplugged; session {rec['session_id'][:8]} closed: {rec['reason']}")
    s.say(f"energy to vehicle {rec['energy_import_wh']:.1f} Wh, from vehicle "
          f"{rec['energy_export_wh']:.1f} Wh; peaks +{rec['peak_charge_power_w'] / 1000:.1f} / "
          f"-{rec['peak_discharge_power_w'] / 1000:.1f} kW")  # fmt: skip
    return 0
