"""An in-process daemon on the virtual station, driven only through its API
(tests/station_rig.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from bptd.config import Config
from station_rig import Station, running

__all__ = ["Station"]


@pytest.fixture
def station(station_config: Config, tmp_path: Path) -> Iterator[Station]:
    with running(station_config, tmp_path) as st:
        yield st


@pytest.fixture
def make_station(tmp_path: Path) -> Iterator[Callable[..., Station]]:
    """Start a daemon on another config: ``make_station(config, **options)``."""
    with ExitStack() as stack:

        def make(config: Config, **options: Any) -> Station:
            return stack.enter_context(running(config, tmp_path, **options))

        yield make
