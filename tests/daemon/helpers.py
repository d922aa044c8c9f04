"""Helpers of the daemon tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    timeout_s: float,
    what: str,
    interval_s: float = 0.02,
) -> T:
    """The first truthy result of ``check()``, polled until ``timeout_s`` has passed.

    Fails with ``what`` and the last result when the deadline passes first; an exception
    raised by ``check`` propagates.
    """
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}; last: {result!r}")
        pause.wait(interval_s)


def json_key(value: Any) -> str:
    """A JSON value as canonical text: ids compare by this (1 and 1.0 and true differ)."""
    return json.dumps(value, sort_keys=True, allow_nan=True)
