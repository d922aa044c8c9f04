"""In-process daemons on the virtual station for the lab tests, with a session ready."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import station_rig
from bptd.config import Config
from station_rig import Station

#: the measurement rate of the lab tests (the default 10 Hz is too coarse for activation
#: times; a lab raises ``[station] telemetry_hz`` the same way)
TELEMETRY_HZ = 100.0


#: RPDOs on change at most this often (default 50 ms). The first RPDOs after a setpoint
#: carry one control tick of the daemon's ramp (a few hundred W at most); with the
#: default inhibit the rest of the ramp follows 50 ms later, which would add 0 or 50 ms
#: to every activation time depending on how much that first tick moved.
RPDO_INHIBIT_MS = 10


def lab_config(config: Config, **sim: Any) -> Config:
    """``config`` with the lab's telemetry rate and these virtual-module dynamics."""
    config = station_rig.patient(config)
    return dataclasses.replace(
        config,
        station=dataclasses.replace(config.station, telemetry_hz=TELEMETRY_HZ),
        can=dataclasses.replace(config.can, rpdo_inhibit_ms=RPDO_INHIBIT_MS),
        sim=dataclasses.replace(config.sim, **sim),
    )


@dataclasses.dataclass
class Lab:
    station: Station
    control: str
    telemetry: str
    config: Config

    def bptctl(self, *args: str) -> list[str]:
        """``bptctl`` arguments aimed at this daemon."""
        return ["--control", self.control, "--telemetry", self.telemetry, *args]


@contextmanager
def running(config: Config, where: Path) -> Iterator[Lab]:
    """A daemon with the virtual station on ``config``, its sockets under ``where``."""
    with station_rig.running(config, where, topics=("connector.", "event")) as st:
        yield Lab(st, st.control, st.telemetry_endpoint, config)


@pytest.fixture
def lab_station(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """``lab_station(config)``: a daemon on ``config`` for this test."""
    stack: list[Any] = []

    def make(config: Config) -> Lab:
        cm = running(config, tmp_path)
        stack.append(cm)
        return cm.__enter__()

    yield make
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
