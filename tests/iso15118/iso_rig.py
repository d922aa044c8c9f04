"""Processes and the rig of the ISO 15118 end-to-end tests (fixtures in conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from station_rig import Station

ROOT = Path(__file__).resolve().parents[2]
EV_SCRIPT = Path(__file__).with_name("ev_vehicle.py")


class Process:
    """A child process with its output in a file."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            args,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()
        return self.proc.returncode


class Rig:
    """The station, the SECC frontend and (per test) the vehicle."""

    def __init__(
        self,
        station: Station,
        python: Path,
        veth: tuple[str, str],
        where: Path,
        authorize: str = "self",
    ) -> None:
        self.station = station
        self.python = python
        self.secc_iface, self.ev_iface = veth
        self.where = where
        self.procs: list[Process] = []
        self.states: list[str] = []  # every connector state seen in telemetry, in order
        self.last: dict[str, Any] = {}
        self.secc = self._spawn(
            "bptd-iso15118",
            [str(python), "-m", "bptd.iso15118", "--iface", self.secc_iface,
             "--control", station.control, "--connector", "ccs", "--authorize", authorize,
             "--log-format", "console", "--log-level", "info", "--timeout", "2"],
        )  # fmt: skip

    def _spawn(self, name: str, args: list[str]) -> Process:
        p = Process(name, args, self.where / f"{name}.log")
        self.procs.append(p)
        return p

    def secc_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the SECC's UDP and TCP servers are up (its ``status=ready`` log line)."""
        deadline = time.monotonic() + timeout_s
        while "status=ready" not in self.secc.output():
            assert self.secc.alive(), f"bptd-iso15118 ended: {self.secc.output()[-3000:]}"
            assert time.monotonic() < deadline, f"bptd-iso15118 not ready in {timeout_s} s"
            time.sleep(0.05)

    def vehicle(self, protocol: str, service: str = "DC", mode: str = "scheduled") -> Process:
        """Start the package's EVCC as the vehicle at connector ccs, once the SECC listens
        (the EVCC's SDP gives up after 50 requests, 12.5 s)."""
        self.secc_ready()
        return self._spawn(
            f"evcc-{len(self.procs)}",
            [str(self.python), str(EV_SCRIPT), "--iface", self.ev_iface,
             "--control", self.station.control, "--connector", "ccs",
             "--protocol", protocol, "--service", service, "--control-mode", mode],
        )  # fmt: skip

    def watch(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float, what: str
    ) -> dict[str, Any]:
        """The first connector.ccs telemetry message satisfying ``predicate``; records every
        state on the way (:attr:`states`)."""

        def seen(msg: dict[str, Any]) -> bool:
            self.last = msg
            if not self.states or self.states[-1] != msg["state"]:
                self.states.append(msg["state"])
            return predicate(msg)

        return self.station.wait("connector.ccs", seen, timeout_s, what)

    def soc(self) -> float:
        status = self.station.call("sim", action="status")
        return float(status["connectors"]["ccs"]["vehicle"]["soc"])

    def ev_events(self, ev: Process) -> list[dict[str, Any]]:
        events = []
        for line in ev.output().splitlines():
            if line.startswith('{"ev":'):
                events.append(json.loads(line))
        return events

    def close(self, failed: bool) -> list[int | None]:
        codes = []
        for p in reversed(self.procs):
            codes.append(p.stop())
            if failed:
                sys.stderr.write(f"---- {p.name} output ----\n{p.output()[-30000:]}\n")
        return codes
