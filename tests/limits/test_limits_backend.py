"""Backend choice: numba when it works, the reference (logged once) when it does not."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from bptd.limits import LimitsEngine, backend, kernels, reference


def test_auto_uses_numba_when_available() -> None:
    assert backend.warm_up() is True
    assert LimitsEngine(1, 1).backend == "numba"


def test_failing_numba_falls_back_to_reference_and_logs_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> None:
        raise RuntimeError("cannot compile")

    monkeypatch.setattr(kernels, "warm_up", broken)
    backend.numba_kernels.cache_clear()
    try:
        with capture_logs() as logs:
            eng = LimitsEngine(1, 1)
            LimitsEngine(2, 1)
        assert eng.backend == "reference"
        assert backend.select("auto") is reference
        assert [e["event"] for e in logs] == ["limits.numba_unavailable"]
        with pytest.raises(RuntimeError):
            backend.select("numba")
        eng.set_allocation(0, [0])
        assert eng.compute(voltage_v=[500.0]).charge_current_a[0] == pytest.approx(21.0)
    finally:
        backend.numba_kernels.cache_clear()


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(ValueError):
        backend.select("gpu")
