"""The thesis's two lab scripts (appendix A.4.3: toggle, ramp), changed only in host and
credentials, run against bptd-http and the daemon on the virtual station: the power
follows every request."""

from __future__ import annotations

import difflib
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from http_rig import PASSWORD, USER, Http

from station_rig import Station

HERE = Path(__file__).parent
CONNECTOR = "chademo"
SECC = "/supervisor/secc/EVIS_B_CHA/update"


def adapted(name: str, http: Http, where: Path) -> Path:
    """The script with the lab's host and credentials replaced, and nothing else."""
    original = (HERE / "thesis" / name).read_text()
    text = (
        original.replace("192.168.200.12:8333", f"127.0.0.1:{http.port}")
        .replace('username = "user"', f'username = "{USER}"')
        .replace('password = "pass"', f'password = "{PASSWORD}"')
    )
    changed = [
        line[1:]
        for line in difflib.unified_diff(original.splitlines(), text.splitlines(), n=0)
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert changed and all(
        f"127.0.0.1:{http.port}" in line or USER in line or PASSWORD in line for line in changed
    ), changed
    path = where / name
    path.write_text(text)
    return path


class ScriptRun:
    """A lab script in its own process; the test releases each of its sleeps."""

    def __init__(self, script: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "thesis_runner.py"), str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def next_sleep(self, timeout_s: float = 30.0) -> float | None:
        """Run until the script sleeps (its seconds) or ends (None)."""
        while True:
            try:
                line = self._q.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"the script is stuck; output:\n{self.text()}") from None
            if line is None:
                return None
            if line.startswith("@@sleep "):
                return float(line.split()[1])
            self.lines.append(line)

    def resume(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self) -> int:
        code = self.proc.wait(30)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return code

    def text(self) -> str:
        return "\n".join(self.lines)


def power_follows(station: Station, sign: int, limit_w: float | None, timeout_s: float) -> Any:
    """Wait until the connector delivers what the request asked: the limit of the chosen
    direction (or what the station and the vehicle allow, when that is less)."""

    def ok(p: dict[str, Any]) -> bool:
        if p["state"] != "energy_transfer" or p["power_w"] is None:
            return False
        lim = p["limits"]["charge_power_w" if sign > 0 else "discharge_power_w"] or 0.0
        expected = sign * min(abs(lim), limit_w if limit_w is not None else abs(lim))
        if limit_w is not None and p["setpoint_w"] != sign * limit_w:
            return False  # the staged limit has not been applied yet
        return abs(p["power_w"] - expected) <= 0.03 * abs(expected) + 150.0

    what = f"power {'+' if sign > 0 else '-'}{limit_w or 'max'} W"
    return station.wait(f"connector.{CONNECTOR}", ok, timeout_s, what)


def start_chademo(station: Station, http: Http, **limits: float) -> None:
    """What the lab did in the vendor GUI before a script: vehicle in, limits, SUP1."""
    station.plug(CONNECTOR, "chademo_v2h", soc=0.6)
    if limits:
        assert http.put(f"{SECC}/limitations", limits).status_code == 200
    r = http.put(f"{SECC}/command", {"interface": 2, "request_code": 1})
    assert r.status_code == 200, r.text
    station.wait_state(CONNECTOR, "authorized")


def test_toggle_script_switches_direction(station: Station, http: Http, tmp_path: Path) -> None:
    start_chademo(station, http, max_dc_charge_power=6000, max_dc_discharge_power=6000)
    run = ScriptRun(adapted("toggle.py", http, tmp_path))
    directions: list[int] = []
    while (seconds := run.next_sleep()) is not None:
        modes = [line for line in run.lines if line.startswith("Request successful! Set")]
        if modes:
            sign = 1 if modes[-1].endswith("Set charging mode") else -1
            if not directions or directions[-1] != sign or seconds >= 30:
                power_follows(station, sign, 6000.0, 60.0 if not directions else 20.0)
            directions.append(sign)
        run.resume()
    assert run.finish() == 0, run.text()
    assert "failed" not in run.text() and "Error" not in run.text(), run.text()
    modes = [line.rsplit(" ", 2)[1] for line in run.lines if line.startswith("Request successful!")]
    assert modes == ["charging", "discharging", "charging", "discharging"]
    assert run.lines.count("@@gpio 7 1") == 4
    record = station.call("sessions", connector=CONNECTOR)["sessions"][-1]
    assert record["energy_import_wh"] > 0 and record["energy_export_wh"] > 0


def test_ramp_script_power_follows_each_step(station: Station, http: Http, tmp_path: Path) -> None:
    start_chademo(station, http)
    run = ScriptRun(adapted("ramp.py", http, tmp_path))
    steps = 0
    peak = {1: 0.0, -1: 0.0}
    while (seconds := run.next_sleep()) is not None:
        assert seconds == 5
        updated = [line for line in run.lines if line.startswith("Updated max_dc_")]
        assert run.lines[-1] in ("Command request successful!", updated[-1]), run.text()
        field, _, value = updated[-1].removeprefix("Updated ").partition(" to ")
        sign = 1 if field == "max_dc_charge_power" else -1
        p = power_follows(station, sign, float(value), 60.0 if steps == 0 else 15.0)
        peak[sign] = max(peak[sign], abs(p["power_w"]))
        steps += 1
        run.resume()
    assert run.finish() == 0, run.text()
    assert "failed" not in run.text() and "Error" not in run.text(), run.text()
    assert steps == 4 * 45 + 1
    # the ramps reach what the vehicle (30 A discharge) and the two modules allow
    assert peak[-1] > 9000 and peak[1] > 18000, peak
