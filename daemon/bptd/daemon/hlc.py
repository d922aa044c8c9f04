"""What the high-level-communication frontend (ISO 15118 / DIN, or the virtual EVCC)
reports about each vehicle, with its freshness.

The frontend calls ``hlc_update`` at least every few hundred milliseconds (like the EV's
CurrentDemandReq); data older than ``timeout_s`` counts as gone, so a crashed frontend
ends the transfer instead of leaving stale EV limits in force. The CP state (``ready``)
never comes from here: the control loop takes it from the chipset.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bptd.daemon.schema import Arg
from bptd.session import EvData, EvPhase

#: hlc_update arguments besides ``connector`` (all optional: a partial update merges)
EV_FIELDS: dict[str, Arg] = {
    "phase": Arg("str", choices=tuple(p.value for p in EvPhase), doc="ISO 15118 phase"),
    "bpt": Arg("bool", doc="bidirectional power transfer selected (DC_BPT)"),
    "max_voltage_v": Arg("number", min=0, max=1500),
    "min_voltage_v": Arg("number", min=0, max=1500),
    "max_charge_current_a": Arg("number", min=0, max=1000),
    "max_discharge_current_a": Arg("number", min=0, max=1000),
    "max_charge_power_w": Arg("number", min=0, max=1e6),
    "max_discharge_power_w": Arg("number", min=0, max=1e6),
    "target_voltage_v": Arg("number", min=0, max=1500),
    "target_current_a": Arg("number", min=-1000, max=1000),
    "present_voltage_v": Arg("number", min=0, max=1500),
    "soc": Arg("number", min=0, max=100, doc="state of charge in percent"),
    "contactors_closed": Arg("bool"),
}


@dataclass
class HlcEntry:
    data: EvData = field(default_factory=EvData)
    updated_at: float | None = None
    updates: int = 0


class HlcStore:
    """EV data per connector, as the ``hlc_*`` commands set it."""

    def __init__(self, connectors: list[str], timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self.entries = {name: HlcEntry() for name in connectors}

    def update(self, connector: str, now: float, fields: dict[str, Any]) -> EvData:
        e = self.entries[connector]
        base = e.data if self.fresh(connector, now) else EvData()
        changes: dict[str, Any] = {"present": True}
        for k, v in fields.items():
            if k == "phase":
                changes[k] = EvPhase(v)
            elif k == "soc":
                changes[k] = float(v)
            else:
                changes[k] = v
        e.data = dataclasses.replace(base, **changes)
        e.updated_at = now
        e.updates += 1
        return e.data

    def end(self, connector: str) -> None:
        self.entries[connector] = HlcEntry()

    def fresh(self, connector: str, now: float) -> bool:
        e = self.entries[connector]
        return e.updated_at is not None and now - e.updated_at <= self.timeout_s

    def ev(self, connector: str, now: float, ready: bool) -> EvData:
        """The EV as the session sees it this tick; ``ready`` comes from the chipset CP."""
        e = self.entries[connector]
        if not self.fresh(connector, now):
            return EvData(ready=ready)
        return dataclasses.replace(e.data, ready=ready)

    def age_s(self, connector: str, now: float) -> float:
        e = self.entries[connector]
        return math.inf if e.updated_at is None else now - e.updated_at
