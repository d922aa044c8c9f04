"""An in-process daemon on the virtual station (its CHAdeMO charger and vehicle ECU running),
driven through the API (tests/station_rig.py), with the patient heartbeat consumer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bptd.config import Config
from station_rig import Station, running


@pytest.fixture
def station(station_config: Config, tmp_path: Path) -> Iterator[Station]:
    with running(station_config, tmp_path) as st:
        yield st
