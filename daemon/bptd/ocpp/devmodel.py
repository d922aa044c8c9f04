"""A small device model: the variables of the station the CSMS may read and set, with
their 1.6 configuration key and their 2.x component / variable names.

Values the CSMS sets are kept in the state file (they survive restarts); ``--var`` on the
command line gives other defaults.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

#: the measurands bptd measures (docs/ocpp.md "Meter values")
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Power.Active.Export",
    "Current.Import",
    "Current.Export",
    "Voltage",
    "SoC",
)
REGISTERS = "Energy.Active.Import.Register,Energy.Active.Export.Register"


@dataclass(frozen=True)
class Var:
    key: str
    kind: str  # int, bool, csl, str
    default: Any
    readonly: bool = False
    v16: str | None = None
    component: str | None = None
    variable: str | None = None
    instance: str | None = None
    minimum: int | None = None
    default_16: Any = None  # when 1.6 words it differently
    check: Callable[[Any], str | None] | None = None  # an error text for a bad value


def _measurands(value: Any) -> str | None:
    bad = [m for m in str(value).split(",") if m and m not in MEASURANDS]
    return f"unsupported measurands {bad}" if bad else None


VARIABLES: tuple[Var, ...] = (
    Var("heartbeat_interval", "int", 300, v16="HeartbeatInterval",
        component="OCPPCommCtrlr", variable="HeartbeatInterval", minimum=1),
    Var("meter_interval", "int", 60, v16="MeterValueSampleInterval",
        component="SampledDataCtrlr", variable="TxUpdatedInterval", minimum=0),
    Var("measurands", "csl", ",".join(MEASURANDS), v16="MeterValuesSampledData",
        component="SampledDataCtrlr", variable="TxUpdatedMeasurands", check=_measurands),
    Var("started_measurands", "csl", REGISTERS,
        component="SampledDataCtrlr", variable="TxStartedMeasurands", check=_measurands),
    Var("ended_measurands", "csl", REGISTERS, v16="StopTxnSampledData",
        component="SampledDataCtrlr", variable="TxEndedMeasurands", check=_measurands),
    Var("connection_timeout", "int", 60, v16="ConnectionTimeOut",
        component="TxCtrlr", variable="EVConnectionTimeOut", minimum=1),
    Var("authorize_remote", "bool", False, v16="AuthorizeRemoteTxRequests",
        component="AuthCtrlr", variable="AuthorizeRemoteStart"),
    Var("stop_on_invalid", "bool", True, v16="StopTransactionOnInvalidId",
        component="TxCtrlr", variable="StopTxOnInvalidId"),
    Var("message_attempts", "int", 3, v16="TransactionMessageAttempts",
        component="OCPPCommCtrlr", variable="MessageAttempts", instance="TransactionEvent",
        minimum=1),
    Var("message_retry_s", "int", 10, v16="TransactionMessageRetryInterval",
        component="OCPPCommCtrlr", variable="MessageAttemptInterval",
        instance="TransactionEvent", minimum=0),
    Var("number_of_connectors", "int", 0, readonly=True, v16="NumberOfConnectors"),
    Var("stack_level", "int", 8, readonly=True, v16="ChargeProfileMaxStackLevel",
        component="SmartChargingCtrlr", variable="ProfileStackLevel"),
    Var("rate_units", "csl", "A,W", readonly=True, default_16="Current,Power",
        v16="ChargingScheduleAllowedChargingRateUnit",
        component="SmartChargingCtrlr", variable="RateUnit"),
    Var("max_periods", "int", 24, readonly=True, v16="ChargingScheduleMaxPeriods",
        component="SmartChargingCtrlr", variable="PeriodsPerSchedule"),
    Var("max_profiles", "int", 32, readonly=True, v16="MaxChargingProfilesInstalled",
        component="SmartChargingCtrlr", variable="Entries", instance="ChargingProfiles"),
    Var("smart_charging", "bool", True, readonly=True,
        component="SmartChargingCtrlr", variable="Enabled"),
    Var("feature_profiles", "csl", "Core,SmartCharging,RemoteTrigger", readonly=True,
        v16="SupportedFeatureProfiles"),
    Var("max_keys", "int", 50, readonly=True, v16="GetConfigurationMaxKeys"),
    Var("tx_start_point", "csl", "Authorized", readonly=True,
        component="TxCtrlr", variable="TxStartPoint"),
    Var("tx_stop_point", "csl", "Authorized,PowerPathClosed", readonly=True,
        component="TxCtrlr", variable="TxStopPoint"),
    Var("items_get", "int", 50, readonly=True,
        component="DeviceDataCtrlr", variable="ItemsPerMessage", instance="GetVariables"),
    Var("items_set", "int", 50, readonly=True,
        component="DeviceDataCtrlr", variable="ItemsPerMessage", instance="SetVariables"),
)  # fmt: skip

BY_KEY = {v.key: v for v in VARIABLES}


def _parse(var: Var, text: Any) -> Any:
    """OCPP text -> value; ValueError when it does not fit."""
    s = str(text).strip()
    if var.kind == "int":
        value = int(s)
        if var.minimum is not None and value < var.minimum:
            raise ValueError(f"{var.key} must be at least {var.minimum}")
        return value
    if var.kind == "bool":
        if s.lower() in ("true", "1"):
            return True
        if s.lower() in ("false", "0"):
            return False
        raise ValueError(f"{var.key} is true or false")
    if var.check is not None:
        problem = var.check(s)
        if problem:
            raise ValueError(problem)
    return s


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DeviceModel:
    """The variables of one station; ``version`` picks the names ("1.6", "2.0.1", "2.1")."""

    def __init__(
        self,
        version: str,
        stored: MutableMapping[str, Any],
        overrides: dict[str, str] | None = None,
        computed: dict[str, Any] | None = None,
    ) -> None:
        self.version = version
        self._stored = stored  # the state file's section: what the CSMS set
        self._defaults: dict[str, Any] = {}
        for var in VARIABLES:
            d = var.default_16 if version == "1.6" and var.default_16 is not None else var.default
            self._defaults[var.key] = d
        for key, value in (computed or {}).items():
            self._defaults[key] = value
        for name, value in (overrides or {}).items():
            var = self.find(name)
            if var is None:
                raise ValueError(f"unknown variable {name!r}")
            self._defaults[var.key] = _parse(var, value)

    # ------------------------------------------------------------------ lookup
    def visible(self) -> list[Var]:
        if self.version == "1.6":
            return [v for v in VARIABLES if v.v16]
        return [v for v in VARIABLES if v.component]

    def find(self, name: str) -> Var | None:
        """By internal key, 1.6 key, or ``Component.Variable[.Instance]``."""
        if name in BY_KEY:
            return BY_KEY[name]
        for v in VARIABLES:
            if v.v16 == name:
                return v
            full = f"{v.component}.{v.variable}" + (f".{v.instance}" if v.instance else "")
            if v.component and name == full:
                return v
        return None

    def find16(self, key: str) -> Var | None:
        return next((v for v in VARIABLES if v.v16 == key), None)

    def components(self) -> set[str]:
        return {v.component for v in VARIABLES if v.component}

    def find2x(self, component: str, variable: str, instance: str | None) -> Var | None:
        for v in VARIABLES:
            if v.component == component and v.variable == variable and v.instance == instance:
                return v
        return None

    def has_variable(self, component: str, variable: str) -> bool:
        return any(v.component == component and v.variable == variable for v in VARIABLES)

    # ------------------------------------------------------------------ values
    def get(self, key: str) -> Any:
        var = BY_KEY[key]
        if not var.readonly and key in self._stored:
            return self._stored[key]
        return self._defaults[key]

    def text(self, key: str) -> str:
        return text(self.get(key))

    def set(self, key: str, value: Any) -> str | None:
        """Set from OCPP text; an error text when refused (read-only or a bad value)."""
        var = BY_KEY[key]
        if var.readonly:
            return f"{key} is read-only"
        try:
            self._stored[key] = _parse(var, value)
        except ValueError as exc:
            return str(exc) or f"bad value for {key}"
        return None

    def set_internal(self, key: str, value: Any) -> None:
        """A value the station learns itself (HeartbeatInterval from the boot answer)."""
        self._stored[key] = value

    def measurands(self, key: str = "measurands") -> list[str]:
        return [m for m in str(self.get(key)).split(",") if m]
