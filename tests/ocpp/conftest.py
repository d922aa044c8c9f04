"""The OCPP rig: bptd in-process on the virtual station, bptd-ocpp as its own process, and a
scripted CSMS (tests/ocpp/csms.py) on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from csms import Csms

from bptd.api.client import Client, Subscriber
from bptd.config import Config
from bptd.daemon.app import Daemon, DaemonOptions

BOOT_TIMEOUT_S = 20.0


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


@pytest.fixture
def station(reference_config: Config, tmp_path: Path) -> Iterator[Station]:
    opts = DaemonOptions(
        sim=True,
        control=f"ipc://{tmp_path}/control.sock",
        telemetry=f"ipc://{tmp_path}/telemetry.sock",
        records_dir=str(tmp_path / "records"),
    )
    daemon = Daemon(reference_config, opts).start_thread()
    try:
        assert daemon.ready.wait(BOOT_TIMEOUT_S), "daemon not ready"
        with (
            Client(opts.control or "", timeout_s=10.0) as client,
            Subscriber(opts.telemetry or "", ("connector.", "event")) as sub,
        ):
            yield Station(daemon, client, sub, opts)
    finally:
        daemon.stop_thread()


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
        self.kill(signal.SIGTERM)
        return None if self.proc is None else self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def rig(
    station: Station, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[Csms, Frontend]]]:
    """``rig(version)`` -> (csms, frontend started and booted)."""
    made: list[tuple[Csms, Frontend]] = []

    def make(version: str, *extra: str, boot: bool = True) -> tuple[Csms, Frontend]:
        csms = Csms(version).__enter__()
        fe = Frontend(station, csms, tmp_path / "ocpp", tmp_path / "bptd-ocpp.log")
        made.append((csms, fe))
        fe.start(*extra)
        if boot:
            csms.wait("BootNotification", timeout=30.0)
        return csms, fe

    yield make
    failed = getattr(request.node, "rep_call", None)
    for csms, fe in made:
        fe.stop()
        csms.close()
        if failed is not None and failed.failed:
            sys.stderr.write("---- bptd-ocpp output ----\n" + fe.output()[-20000:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


os.environ.setdefault("PYTHONUNBUFFERED", "1")
