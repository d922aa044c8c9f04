"""The OCPP rig: bptd with a client and a subscriber, bptd-ocpp as a process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocpp_csms import Csms

from bptd.api.client import Client, Subscriber
from bptd.daemon.app import Daemon


class Station:
    """bptd with a client and a telemetry subscriber (as tests/daemon/conftest.py)."""

    def __init__(self, daemon: Daemon, client: Client, telemetry: Subscriber, opts: Any) -> None:
        self.daemon = daemon
        self.client = client
        self.telemetry = telemetry
        self.control = opts.control
        self.telemetry_endpoint = opts.telemetry

    def call(self, cmd: str, **args: Any) -> Any:
        return self.client.call(cmd, **args)

    def wait(
        self,
        topic: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout_s: float = 15.0,
        what: str = "",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {topic} with {what or 'the condition'}; last: {last}")
            msg = self.telemetry.recv(remaining)
            if msg is None or msg[0] != topic:
                continue
            last = msg[1]
            if predicate(msg[1]):
                return msg[1]

    def wait_state(self, connector: str, state: str, timeout_s: float = 15.0) -> dict[str, Any]:
        return self.wait(
            f"connector.{connector}", lambda p: p["state"] == state, timeout_s, f"state {state}"
        )

    def plug(self, connector: str = "ccs", vehicle: str = "bpt", **params: Any) -> None:
        self.call("sim", action="plug", connector=connector, vehicle=vehicle, **params)
        self.wait_state(connector, "connected")


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
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                "bptd-ocpp did not stop on SIGTERM:\n" + self.output()[-5000:]
            ) from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
