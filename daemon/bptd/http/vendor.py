"""The vendor supervisor's REST interface mapped onto bptd commands (pure: no I/O).

``PUT /supervisor/secc/<id>/update/limitations`` stages limits; ``.../update/command``
sends a request code. As on the vendor's supervisor, staged limits, direction and mode are
applied by SUP3_ALLOCATIONDONE; the other codes map one to one onto ``supervisor_request``
(docs/http.md has the table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: vendor limitation field -> bptd ``set_limits`` argument
LIMITS: dict[str, str] = {
    "max_dc_charge_voltage": "max_charge_voltage_v",
    "max_dc_charge_current": "max_charge_current_a",
    "max_dc_charge_power": "max_charge_power_w",
    "max_ac_charge_current": "max_ac_charge_current_a",
    "max_dc_discharge_voltage": "max_discharge_voltage_v",
    "max_dc_discharge_current": "max_discharge_current_a",
    "max_dc_discharge_power": "max_discharge_power_w",
    "max_ac_discharge_current": "max_ac_discharge_current_a",
}
#: the largest value each kind of limit may have (what ``set_limits`` accepts)
LIMIT_MAX = {"_v": 1500.0, "_a": 2000.0, "_w": 1e6}

#: vendor command field -> (kind, min, max)
COMMAND_FIELDS: dict[str, tuple[str, int, int]] = {
    "interface": ("int", 0, 2),
    "request_code": ("int", 0, 7),
    "discharge_compatible": ("bool", 0, 1),
    "discharge_mode": ("bool", 0, 1),
    "dynamic_mode": ("bool", 0, 1),
    "imd_external": ("bool", 0, 1),
    "imd_state": ("int", 0, 255),
}
REQUEST_CODES = (
    "SUP0_IDLE",
    "SUP1_APPROBATION",
    "SUP2_CANCELLATION",
    "SUP3_ALLOCATIONDONE",
    "SUP4_STOPCHARGE",
    "SUP5_TERMINATE",
    "SUP6_RESET",
    "SUP7_REARMWITHOUTUNPLUG",
)
#: states in which SUP3 allocates and starts (later states only take limits and direction)
SUP3_STARTS = ("authorized", "allocated")


class VendorError(ValueError):
    """A request the vendor interface refuses; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class VendorCommand:
    interface: int = 0
    request_code: int = 0
    discharge_compatible: bool = False
    discharge_mode: bool = False
    dynamic_mode: bool = False
    imd_external: bool = False
    imd_state: int = 0

    @property
    def bidirectional(self) -> bool:
        return self.interface == 2 and self.discharge_compatible

    @property
    def control(self) -> str:
        return "dynamic" if self.dynamic_mode else "scheduled"


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise VendorError(f"the {what} body must be a JSON object")
    return body


def _unknown(body: dict[str, Any], known: Any) -> None:
    unknown = [k for k in body if k not in known]
    if unknown:
        raise VendorError(f"unknown field {str(unknown[0])[:40]!r}; fields: {', '.join(known)}")


def parse_limitations(body: Any) -> dict[str, float]:
    """The ``set_limits`` arguments for a limitations body (any subset of the 8 fields)."""
    body = _object(body, "limitations")
    _unknown(body, LIMITS)
    out: dict[str, float] = {}
    for field, arg in LIMITS.items():
        if field not in body:
            continue
        value = body[field]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise VendorError(f"{field} must be a number")
        v = float(value)
        top = LIMIT_MAX[arg[arg.rindex("_") :]]
        if not math.isfinite(v) or not 0 <= v <= top:
            raise VendorError(f"{field}={value!r} is outside 0..{top:.0f}")
        out[arg] = v
    return out


def parse_command(body: Any) -> VendorCommand:
    body = _object(body, "command")
    _unknown(body, COMMAND_FIELDS)
    if "request_code" not in body:
        raise VendorError("missing field 'request_code' (0..7, SUP0..SUP7)")
    values: dict[str, Any] = {}
    for field, (kind, lo, hi) in COMMAND_FIELDS.items():
        if field not in body:
            continue
        value = body[field]
        if kind == "bool":
            if not isinstance(value, bool):
                raise VendorError(f"{field} must be true or false")
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise VendorError(f"{field} must be an integer {lo}..{hi}")
            if not lo <= value <= hi:
                raise VendorError(f"{field}={value} is outside {lo}..{hi}")
        values[field] = value
    cmd = VendorCommand(**values)
    if cmd.request_code == 3 and cmd.discharge_mode and not cmd.bidirectional:
        raise VendorError(
            "discharge_mode needs interface 2 (V2G) and discharge_compatible true", 409
        )
    return cmd


Step = tuple[str, dict[str, Any]]


def plan(
    connector: str,
    cmd: VendorCommand,
    staged: dict[str, float],
    state: str,
    max_power_w: float,
) -> list[Step]:
    """The bptd commands for one vendor command, in order.

    SUP3: the staged limits (``set_limits``), the direction and mode (``set_mode``), in
    dynamic mode the setpoint (the staged power limit of the chosen direction, or the
    connector's maximum: the EVSE delivers what the limits allow, as the vendor's did),
    and, before energy flows, ``supervisor_request`` code 3 (allocate and start).
    """
    if cmd.request_code != 3:
        return [("supervisor_request", {"connector": connector, "code": cmd.request_code})]
    steps: list[Step] = []
    if staged:
        steps.append(("set_limits", {"connector": connector, **staged}))
    mode: Step = (
        "set_mode",
        {"connector": connector, "bidirectional": cmd.bidirectional, "control": cmd.control},
    )
    if cmd.dynamic_mode:
        if cmd.discharge_mode:
            power = -staged.get("max_discharge_power_w", max_power_w)
        else:
            power = staged.get("max_charge_power_w", max_power_w)
        power = max(-max_power_w, min(max_power_w, power))
        setpoint: Step = ("setpoint", {"connector": connector, "power_w": power})
        # discharge needs the bidirectional mode first; charge leaves it last
        steps += [mode, setpoint] if power < 0 else [setpoint, mode]
    else:
        steps.append(mode)
    if state in SUP3_STARTS:
        steps.append(
            (
                "supervisor_request",
                {
                    "connector": connector,
                    "code": 3,
                    "bidirectional": cmd.bidirectional,
                    "control": cmd.control,
                },
            )
        )
    return steps
