"""The OCPP rig: bptd in-process on the virtual station, bptd-ocpp as its own process, and a
scripted CSMS (tests/ocpp/ocpp_csms.py) on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ocpp_csms import Csms
from ocpp_rig import Frontend, Station

from bptd.config import Config
from station_rig import running


@pytest.fixture
def station(station_config: Config, tmp_path: Path) -> Iterator[Station]:
    with running(station_config, tmp_path, topics=("connector.", "event")) as st:
        yield st


@pytest.fixture
def rig(
    station: Station, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[Csms, Frontend]]]:
    """``rig(version)`` -> (csms, frontend started and booted)."""
    made: list[tuple[Csms, Frontend]] = []

    def make(version: str, *extra: str, boot: bool = True, **csms: Any) -> tuple[Csms, Frontend]:
        peer = Csms(version, **csms).__enter__()
        fe = Frontend(station, peer, tmp_path / "ocpp", tmp_path / "bptd-ocpp.log")
        made.append((peer, fe))
        fe.start(*extra)
        if boot:
            peer.wait("BootNotification", timeout=30.0)
        return peer, fe

    yield make
    failed = getattr(request.node, "rep_call", None)
    codes = []
    for csms, fe in made:
        codes.append(fe.stop())
        csms.close()
        if failed is not None and failed.failed:
            sys.stderr.write("---- bptd-ocpp output ----\n" + fe.output()[-20000:])
    assert all(c in (0, None) for c in codes), f"bptd-ocpp exit codes on SIGTERM: {codes}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


os.environ.setdefault("PYTHONUNBUFFERED", "1")
