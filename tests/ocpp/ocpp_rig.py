"""The OCPP rig: bptd-ocpp as a process beside the daemon of tests/station_rig.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from ocpp_csms import Csms

from station_rig import Station, stop_frontend


class Frontend:
    """bptd-ocpp as a process (``python -m bptd.ocpp``)."""

    def __init__(self, station: Station, csms: Csms, state_dir: Path, log: Path) -> None:
        self.station = station
        self.csms = csms
        self.state_dir = state_dir
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> Frontend:
        args = [
            sys.executable, "-m", "bptd.ocpp",
            "--control", self.station.control,
            "--telemetry", self.station.telemetry_endpoint,
            "--csms-url", self.csms.url,
            "--station-id", "CS-1",
            "--ocpp-version", self.csms.version,
            "--state-dir", str(self.state_dir),
            "--reconnect-min", "0.2", "--reconnect-max", "1",
            "--response-timeout", "10",
            "--var", "meter_interval=1",
            "--log-format", "console", "--log-level", "info",
            *extra,
        ]  # fmt: skip
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)

    def stop(self) -> int | None:
        """SIGTERM, as systemd stops it: it must end within seconds."""
        return stop_frontend(self.proc, "bptd-ocpp", self.output)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
