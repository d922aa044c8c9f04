"""Helpers of the fieldbus tests: a fast config and a loop driver.

Timeouts are shortened through the config (supervisor heartbeat 100 ms, boot retry 0.2 s);
tests synchronise with :meth:`Loop.wait_until`, which runs ``poll()`` and ``flush()`` every
10 ms in the test thread, as the control loop would.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from bptd.config import Config, load_config
from bptd.fieldbus import Fieldbus, FieldbusEvent, NodeState, NodeStateChanged

TICK_S = 0.01
KEYS = ("chipset.ccs", "chipset.chademo", "dcdc.1", "afe.1", "dcdc.2", "afe.2")


def fast_config(**can_changes: object) -> Config:
    cfg = load_config()
    can_cfg = dataclasses.replace(cfg.can, heartbeat_ms=100, boot_retry_s=0.2, **can_changes)
    return cfg.replace(can=can_cfg)


class Loop:
    """Drives a :class:`Fieldbus` like the control loop and records every event."""

    def __init__(self, fb: Fieldbus) -> None:
        self.fb = fb
        self.events: list[FieldbusEvent] = []

    def tick(self) -> list[FieldbusEvent]:
        now = time.monotonic()
        new = self.fb.poll(now)
        self.fb.flush(now)
        self.events += new
        return new

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.tick()
            if predicate():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(TICK_S)

    def run_for(self, seconds: float) -> None:
        """Keep the loop running (a hold period for negative checks, not a synchronisation)."""
        self.wait_until(lambda: False, seconds)

    def all_operational(self) -> bool:
        return all(s is NodeState.OPERATIONAL for s in self.fb.states().values())

    def changes(self, key: str) -> list[NodeStateChanged]:
        return [e for e in self.events if isinstance(e, NodeStateChanged) and e.key == key]

    def of(self, kind: type[FieldbusEvent]) -> list[FieldbusEvent]:
        return [e for e in self.events if isinstance(e, kind)]
