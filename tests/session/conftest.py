from __future__ import annotations

import pytest

from bptd.config import Config
from bptd.session import SessionConfig, Station

from .rig import Rig


@pytest.fixture
def station(reference_config: Config) -> Station:
    return Station.from_config(reference_config, SessionConfig())


@pytest.fixture
def rig(station: Station) -> Rig:
    return Rig(station)
