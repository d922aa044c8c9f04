"""Choice of the kernel implementation: numba when it loads and compiles, else the reference."""

from __future__ import annotations

import functools
from types import ModuleType

import structlog

from bptd.limits import reference

_log = structlog.get_logger(__name__)


@functools.cache
def numba_kernels() -> ModuleType | None:
    """The compiled kernels (all signatures warmed up), or None if numba is unusable.

    Called once per process; the failure, if any, is logged once.
    """
    try:
        from bptd.limits import kernels

        kernels.warm_up()
    except Exception as exc:  # numba missing, broken, or failing to compile
        _log.warning("limits.numba_unavailable", error=repr(exc), fallback="reference")
        return None
    return kernels


def select(backend: str = "auto") -> ModuleType:
    """``"auto"`` (numba, else reference), ``"numba"`` (raise if unusable) or ``"reference"``."""
    if backend == "reference":
        return reference
    if backend not in ("auto", "numba"):
        raise ValueError(f"unknown limits backend {backend!r}")
    kernels = numba_kernels()
    if kernels is None:
        if backend == "numba":
            raise RuntimeError("numba kernels unavailable")
        return reference
    return kernels


def warm_up() -> bool:
    """Compile every kernel signature into the on-disk cache (``NUMBA_CACHE_DIR``).

    For the daemon start and ``bptd warm-cache``; returns whether numba is in use.
    """
    return numba_kernels() is not None
