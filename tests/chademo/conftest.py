"""An in-process daemon on the virtual station (its CHAdeMO charger and vehicle ECU running),
driven through the API; see tests/daemon/conftest.py.

The station is the reference one with a more patient heartbeat consumer (a node counts as
lost after 10 heartbeat periods instead of 3): these tests are about CHAdeMO, and on a loaded
test machine a 300 ms stall of the simulator thread would otherwise fault the session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.daemon.conftest import Station, _run

from bptd.config import Config


@pytest.fixture
def station(reference_config: Config, tmp_path: Path) -> Iterator[Station]:
    can_cfg = dataclasses.replace(reference_config.can, consumer_factor=10.0)
    yield from _run(dataclasses.replace(reference_config, can=can_cfg), tmp_path)
