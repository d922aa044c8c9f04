"""An in-process daemon on the virtual station, driven only through its API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bptd.api.client import Client, Subscriber
from bptd.config import Config
from bptd.daemon.app import Daemon, DaemonOptions

BOOT_TIMEOUT_S = 20.0


class Station:
    """A running daemon with a client and a telemetry subscriber."""

    def __init__(self, daemon: Daemon, client: Client, telemetry: Subscriber) -> None:
        self.daemon = daemon
        self.client = client
        self.telemetry = telemetry

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
        import time

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
            if msg is None:
                continue
            t, payload = msg
            if t != topic:
                continue
            last = payload
            if predicate(payload):
                return payload

    def wait_state(self, connector: str, state: str, timeout_s: float = 15.0) -> dict[str, Any]:
        return self.wait(
            f"connector.{connector}", lambda p: p["state"] == state, timeout_s, f"state {state}"
        )

    def start_session(
        self, connector: str = "ccs", modules: list[int] | None = None, vehicle: str = "bpt",
        topology: str = "parallel", **vehicle_params: Any,
    ) -> None:  # fmt: skip
        """Plug, authorize, allocate, bidirectional mode, start: energy transfer at 0 W."""
        self.call("sim", action="plug", connector=connector, vehicle=vehicle, **vehicle_params)
        self.wait_state(connector, "connected")
        self.call("authorize", connector=connector)
        self.call("allocate", connector=connector, modules=modules or [1, 2], topology=topology)
        self.call("set_mode", connector=connector, bidirectional=True)
        self.call("start", connector=connector)
        self.wait_state(connector, "energy_transfer", 30.0)


def _run(config: Config, tmp_path: Path, **options: Any) -> Iterator[Station]:
    opts = DaemonOptions(
        sim=True,
        control=f"ipc://{tmp_path}/control.sock",
        telemetry=f"ipc://{tmp_path}/telemetry.sock",
        records_dir=str(tmp_path / "records"),
        **options,
    )
    daemon = Daemon(config, opts).start_thread()
    try:
        assert daemon.ready.wait(BOOT_TIMEOUT_S), "daemon not ready"
        with (
            Client(opts.control or "", timeout_s=10.0) as client,
            Subscriber(opts.telemetry or "", ("connector.", "module.", "event", "station")) as sub,
        ):
            yield Station(daemon, client, sub)
    finally:
        daemon.stop_thread()


@pytest.fixture
def station(reference_config: Config, tmp_path: Path) -> Iterator[Station]:
    yield from _run(reference_config, tmp_path)


@pytest.fixture
def make_station(tmp_path: Path) -> Iterator[Callable[..., Station]]:
    """Start a daemon on another config: ``make_station(config, **options)``."""
    gens: list[Iterator[Station]] = []

    def make(config: Config, **options: Any) -> Station:
        g = _run(config, tmp_path, **options)
        gens.append(g)
        return next(g)

    yield make
    for g in gens:
        for _ in g:
            pass
