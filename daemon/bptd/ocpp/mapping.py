"""From bptd's connector telemetry to OCPP words: connector status, charging state, meter
readings, stop reasons. Pure functions of the ``connector.<name>`` payload (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREPARING = frozenset({"connected", "authorized", "allocated", "cable_check", "precharge"})
FINISHING = frozenset({"stopping", "welding_detection", "finished"})
#: session states in which a transaction has ended
TX_OVER = frozenset({"idle", "connected", "finished", "fault"})
ENERGY_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})

#: |power| at or above which energy counts as flowing (W), |current| likewise (A)
FLOWING_W = 50.0
FLOWING_A = 0.5


def _f(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return 0.0
    return x if x == x else 0.0  # NaN -> 0


def status16(snap: Mapping[str, Any], inoperative: bool = False) -> str:
    """The OCPP 1.6 ChargePointStatus of a connector (before debouncing)."""
    state = snap.get("state")
    if state == "fault":
        return "Faulted"
    if state == "idle":
        return "Unavailable" if inoperative or not snap.get("available", True) else "Available"
    if state in PREPARING:
        return "Preparing"
    if state in FINISHING:
        return "Finishing"
    if state == "energy_transfer":
        if abs(_f(snap.get("power_w"))) >= FLOWING_W or abs(_f(snap.get("current_a"))) >= FLOWING_A:
            return "Charging"
        if snap.get("control") == "scheduled" and _f(snap.get("requested_current_a")) <= 0:
            return "SuspendedEV"
        return "SuspendedEVSE"
    return "Unavailable"


def connector_status(status: str) -> str:
    """2.x ConnectorStatus from the 1.6 word."""
    if status in ("Available", "Faulted", "Unavailable"):
        return status
    return "Occupied"


def charging_state(status: str) -> str:
    """2.x TransactionEvent chargingState from the 1.6 word."""
    if status in ENERGY_STATUSES:
        return status
    if status == "Available":
        return "Idle"
    return "EVConnected"


@dataclass(frozen=True)
class Reading:
    measurand: str
    value: float
    unit: str
    location: str = "Outlet"


def readings(
    snap: Mapping[str, Any] | None, import_wh: float, export_wh: float, measurands: list[str]
) -> list[Reading]:
    """The configured measurands from one telemetry payload and the registers."""
    snap = snap or {}
    power = _f(snap.get("power_w"))
    current = _f(snap.get("current_a"))
    values: dict[str, Reading] = {
        "Energy.Active.Import.Register": Reading(
            "Energy.Active.Import.Register", round(import_wh, 3), "Wh"
        ),
        "Energy.Active.Export.Register": Reading(
            "Energy.Active.Export.Register", round(export_wh, 3), "Wh"
        ),
        "Power.Active.Import": Reading("Power.Active.Import", round(max(power, 0.0), 1), "W"),
        "Power.Active.Export": Reading("Power.Active.Export", round(max(-power, 0.0), 1), "W"),
        "Current.Import": Reading("Current.Import", round(max(current, 0.0), 2), "A"),
        "Current.Export": Reading("Current.Export", round(max(-current, 0.0), 2), "A"),
        "Voltage": Reading("Voltage", round(_f(snap.get("voltage_v")), 1), "V"),
    }
    ev = snap.get("ev") or {}
    if ev.get("present") and ev.get("soc") is not None:
        values["SoC"] = Reading("SoC", round(_f(ev.get("soc")), 1), "Percent", "EV")
    return [values[m] for m in measurands if m in values]


#: the fault reasons of bptd (docs/session.md) that have their own OCPP stop reason
FAULT_REASONS = {
    "estop": "EmergencyStop",
    "insulation_fault": "GroundFault",
    "ev_unplugged": "EVDisconnected",
    "cp_lost": "EVDisconnected",
    "ev_timeout": "Timeout",
    "imd_timeout": "Timeout",
    "precharge_timeout": "Timeout",
    "ev_limits_violated": "StoppedByEV",
}


def stop_reason(new_state: str, text: str, fault: str | None) -> str:
    """The 2.x stoppedReason of a transaction that ended by itself (not on a request of the
    frontend) from the session state it ended in and the reason bptd gave."""
    if new_state == "idle":
        return "EVDisconnected"
    if new_state == "fault":
        return FAULT_REASONS.get(fault or "", "Other")
    if "vehicle" in text.lower():
        return "StoppedByEV"
    if new_state == "connected":
        return "DeAuthorized"
    return "Local"


#: 2.x stoppedReason -> 1.6 StopTransaction reason
REASONS_16 = {
    "DeAuthorized": "DeAuthorized",
    "EmergencyStop": "EmergencyStop",
    "EVDisconnected": "EVDisconnected",
    "ImmediateReset": "HardReset",
    "SoftReset": "SoftReset",
    "Local": "Local",
    "StoppedByEV": "Local",
    "Remote": "Remote",
    "Reboot": "Reboot",
    "PowerLoss": "PowerLoss",
}

#: reasons only the 1.6 adapter knows, mapped for 2.x
REASONS_2X = {"SoftReset": "ImmediateReset", "HardReset": "ImmediateReset"}
