"""Fixtures of the limits tests: every engine test runs on both implementations."""

from __future__ import annotations

import pytest

from bptd.limits import LimitsEngine


@pytest.fixture(params=["numba", "reference"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def one_module(backend: str) -> LimitsEngine:
    eng = LimitsEngine(1, 1, backend=backend)
    eng.set_allocation(0, [0])
    return eng


@pytest.fixture
def two_modules(backend: str) -> LimitsEngine:
    """The DTU station: two BMPU on one connector (topology set by each test)."""
    return LimitsEngine(2, 1, backend=backend)
