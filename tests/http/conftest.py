"""bptd in-process on the virtual station (tests/station_rig.py) and bptd-http as its own
process in front of it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_rig import Http

from bptd.config import Config
from station_rig import Station, running


@pytest.fixture
def station(station_config: Config, tmp_path: Path) -> Iterator[Station]:
    with running(station_config, tmp_path) as st:
        yield st


@pytest.fixture
def http(station: Station, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Http]:
    front = Http(station, tmp_path).start()
    yield front
    code = front.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        sys.stderr.write("---- bptd-http output ----\n" + front.output())
    assert code == 0, f"bptd-http exit code on SIGTERM: {code}\n{front.output()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
