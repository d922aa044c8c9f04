"""Shared fixtures: quiet logs, a unique virtual CAN channel per test, the reference config."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from bptd import logs
from bptd.config import Config, load_config
from bptd.profile import Profile, load_profile

logs.configure("warning", json=False)


@pytest.fixture
def channel() -> str:
    """A virtual CAN channel name no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session", autouse=True)
def _limits_kernels_compiled() -> None:
    """Compile the numba kernels once, before any test runs a daemon or a station."""
    from bptd.limits import warm_up

    warm_up()


@pytest.fixture(scope="session")
def reference_config() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def station_config(reference_config: Config) -> Config:
    """The reference station with a heartbeat consumer patient enough for a loaded test
    machine (tests/station_rig.py): for every test that is not about loss detection."""
    from station_rig import patient

    return patient(reference_config)


@pytest.fixture(scope="session")
def reference_profile() -> Profile:
    return load_profile()


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """No test may leave a non-daemon thread running."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not left, f"threads left running: {[t.name for t in left]}"
