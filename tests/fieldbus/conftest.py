"""Fixtures of the fieldbus tests: a virtual station and the master on a unique virtual bus."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import can
import pytest
from tests.fieldbus.helpers import Loop, fast_config

from bptd.config import Config
from bptd.fieldbus import Fieldbus
from bptd.sim import VirtualStation


@pytest.fixture
def channel() -> str:
    return f"virtual:bptd-test-{uuid.uuid4()}"


@pytest.fixture
def config() -> Config:
    return fast_config()


@pytest.fixture
def station(config: Config, channel: str) -> Iterator[VirtualStation]:
    st = VirtualStation(config, channel).start()
    yield st
    st.close()


@pytest.fixture
def sniffer(channel: str) -> Iterator[can.BusABC]:
    bus = can.Bus(interface="virtual", channel=channel.split(":", 1)[1])
    yield bus
    bus.shutdown()


@pytest.fixture
def master(config: Config, channel: str, station: VirtualStation) -> Iterator[Fieldbus]:
    with Fieldbus(config, bus=channel) as fb:
        yield fb


@pytest.fixture
def loop(master: Fieldbus) -> Loop:
    return Loop(master)


@pytest.fixture
def running(loop: Loop) -> Loop:
    """Every node booted and OPERATIONAL."""
    assert loop.wait_until(loop.all_operational, 10.0), loop.fb.states()
    return loop
