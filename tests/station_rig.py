"""The one test rig for a running daemon: bptd in-process on the virtual station, driven
only through its API (a client and a telemetry subscriber on ipc sockets).

Every suite that needs a daemon (daemon, OCPP, lab, HTTP, ISO 15118) starts it here, so a
change to how a daemon is started or waited for is made once.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bptd.api.client import Client, Subscriber
from bptd.config import Config
from bptd.daemon.app import Daemon, DaemonOptions

BOOT_TIMEOUT_S = 30.0

#: heartbeat consumer time in heartbeat periods for stations under test. The reference
#: config's 3 periods (300 ms for the modules) is right on a board; a loaded two-core test
#: machine running the daemon, the virtual station and a frontend in a handful of threads
#: and processes can stall one of them that long, and a lost module in the middle of a
#: test about something else is noise. Tests about loss detection use the reference config.
PATIENT_CONSUMER_FACTOR = 10.0

TOPICS = ("connector.", "module.", "event", "station")


def stop_frontend(
    proc: subprocess.Popen[bytes] | None, name: str, output: Callable[[], str]
) -> int | None:
    """SIGTERM a frontend process, as systemd stops it: its exit code, or an AssertionError
    with the end of its ``output()`` when it does not end within seconds (then killed)."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"{name} did not stop on SIGTERM:\n" + output()[-5000:]) from None


def patient(config: Config) -> Config:
    """``config`` with a heartbeat consumer that tolerates a loaded test machine."""
    return dataclasses.replace(
        config, can=dataclasses.replace(config.can, consumer_factor=PATIENT_CONSUMER_FACTOR)
    )


class Station:
    """A running daemon with a client and a telemetry subscriber."""

    def __init__(
        self, daemon: Daemon, client: Client, telemetry: Subscriber, opts: DaemonOptions
    ) -> None:
        self.daemon = daemon
        self.client = client
        self.telemetry = telemetry
        self.control: str = opts.control or ""
        self.telemetry_endpoint: str = opts.telemetry or ""

    def call(self, cmd: str, **args: Any) -> Any:
        return self.client.call(cmd, **args)

    def wait(
        self,
        topic: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout_s: float = 15.0,
        what: str = "",
    ) -> dict[str, Any]:
        """The first telemetry message on ``topic`` that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {topic} message with {what or 'the condition'} in {timeout_s} s; "
                    f"last: {last}"
                )
            msg = self.telemetry.recv(remaining)
            if msg is None or msg[0] != topic:
                continue
            last = msg[1]
            if predicate(msg[1]):
                return msg[1]

    def until(self, check: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
        """Ask ``check`` after each telemetry message until it holds (for what telemetry
        does not carry, e.g. the virtual station's own view through ``sim status``)."""
        deadline = time.monotonic() + timeout_s
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not {what or 'the condition'} in {timeout_s} s")
            self.telemetry.recv(remaining)

    def wait_state(self, connector: str, state: str, timeout_s: float = 15.0) -> dict[str, Any]:
        return self.wait(
            f"connector.{connector}", lambda p: p["state"] == state, timeout_s, f"state {state}"
        )

    def plug(self, connector: str = "ccs", vehicle: str = "bpt", **params: Any) -> None:
        """Plug a virtual vehicle and wait until the connector sees it."""
        self.call("sim", action="plug", connector=connector, vehicle=vehicle, **params)
        self.wait_state(connector, "connected")

    def start_session(
        self, connector: str = "ccs", modules: list[int] | None = None, vehicle: str = "bpt",
        topology: str = "parallel", **vehicle_params: Any,
    ) -> None:  # fmt: skip
        """Plug, authorize, allocate, bidirectional mode, start: energy transfer at 0 W."""
        self.plug(connector, vehicle, **vehicle_params)
        self.call("authorize", connector=connector)
        self.call("allocate", connector=connector, modules=modules or [1, 2], topology=topology)
        self.call("set_mode", connector=connector, bidirectional=True)
        self.call("start", connector=connector)
        self.wait_state(connector, "energy_transfer", 30.0)


@contextmanager
def running(
    config: Config, where: Path, topics: tuple[str, ...] = TOPICS, **options: Any
) -> Iterator[Station]:
    """A daemon with the virtual station on ``config``, its sockets and records under
    ``where``; ``options`` go to :class:`DaemonOptions`."""
    opts = DaemonOptions(
        sim=True,
        control=f"ipc://{where}/control.sock",
        telemetry=f"ipc://{where}/telemetry.sock",
        records_dir=str(where / "records"),
        **options,
    )
    daemon = Daemon(config, opts).start_thread()
    try:
        assert daemon.ready.wait(BOOT_TIMEOUT_S), "daemon not ready"
        with (
            Client(opts.control or "", timeout_s=10.0) as client,
            Subscriber(opts.telemetry or "", topics) as sub,
        ):
            yield Station(daemon, client, sub, opts)
    finally:
        daemon.stop_thread()
