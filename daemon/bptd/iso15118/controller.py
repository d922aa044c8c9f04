"""``EVSEControllerInterface`` of the ``iso15118`` package (0.31.2) on top of bptd.

Only runs in the frontend's own virtual environment (it imports ``iso15118``). Every
hardware-facing method asks bptd through :class:`~bptd.iso15118.bridge.HlcBridge`; the
protocol-only ones (price schedules, certificates, meter receipts, the parameter sets) are
the package's reference implementation, which this class extends.

The phase is tracked here from the calls themselves (``start_cable_check``,
``send_charging_command`` before / after PowerDelivery, ``set_hlc_charging``, the welding
and session-stop states), never from ``is_precharge`` / ``is_session_bpt``: the package
passes ``is_session_bpt`` positionally into ``is_precharge`` in the -20 charge loop.

Time budget: a call does one request to bptd (about a millisecond on the ipc socket),
except where the vehicle waits on the station anyway: the cable check and precharge answer
within ``progress_wait_s`` (the vehicle repeats the request), and PowerDelivery start / stop
waits up to ``delivery_wait_s`` for bptd's contactors, inside the vehicle's 2 s timeout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import structlog
from iso15118.secc.controller.interface import AuthorizationResponse, ServiceStatus
from iso15118.secc.controller.simulator import SimEVSEController
from iso15118.shared.messages.datatypes import (
    DCEVSEChargeParameter,
    DCEVSEStatus,
    DCEVSEStatusCode,
    EVSENotification,
    PhysicalValue,
    PVEVSEMaxCurrentLimit,
    PVEVSEMaxPowerLimit,
    PVEVSEMaxVoltageLimit,
    PVEVSEMinCurrentLimit,
    PVEVSEMinVoltageLimit,
    PVEVSEPeakCurrentRipple,
)
from iso15118.shared.messages.din_spec.datatypes import ResponseCode as ResponseCodeDIN
from iso15118.shared.messages.enums import (
    AuthorizationStatus,
    ControlMode,
    CpState,
    EnergyTransferModeEnum,
    IsolationLevel,
    Protocol,
    ServiceV20,
    SessionStopAction,
)
from iso15118.shared.messages.iso15118_2.datatypes import ResponseCode as ResponseCodeV2
from iso15118.shared.messages.iso15118_20.common_messages import (
    Service,
    ServiceList,
    ServiceParameterList,
)
from iso15118.shared.messages.iso15118_20.common_types import EVSENotification as NotificationV20
from iso15118.shared.messages.iso15118_20.common_types import EVSEStatus, RationalNumber
from iso15118.shared.messages.iso15118_20.common_types import ResponseCode as ResponseCodeV20
from iso15118.shared.messages.iso15118_20.dc import (
    BPTDCChargeParameterDiscoveryResParams,
    DCChargeParameterDiscoveryResParams,
)

from bptd.iso15118.bridge import (
    AUTHORIZED,
    OUTPUT_OPEN,
    STOP_CURRENT_A,
    HlcBridge,
    Phase,
    num,
)

log = structlog.get_logger(__name__)

#: bptd states in which the station's DC output contactors are closed
OUTPUT_CLOSED = frozenset({"cable_check", "precharge", "energy_transfer", "stopping"})
#: smallest current / power the station announces as its minimum
MIN_CURRENT_A = 1.0
MIN_POWER_W = 100.0


def _pv(cls: Any, value: float, unit: str) -> Any:
    exponent, v = PhysicalValue.get_exponent_value_repr(value)
    return cls(multiplier=exponent, value=v, unit=unit)


def _r(value: float) -> RationalNumber:
    return RationalNumber.get_rational_repr(value)


def _opt(obj: Any, name: str) -> float | None:
    value = getattr(obj, name, None) if obj is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class BptdEVSEController(SimEVSEController):
    """One connector of bptd as the SECC's EVSE."""

    def __init__(
        self,
        bridge: HlcBridge,
        evse_id: str = "DE*BPT*E0001",
        bpt: bool = True,
        progress_wait_s: float = 0.25,
        delivery_wait_s: float = 1.5,
    ) -> None:
        super().__init__()
        self.bridge = bridge
        self.evse_id = evse_id
        self.offer_bpt = bpt
        self.progress_wait_s = progress_wait_s
        self.delivery_wait_s = delivery_wait_s
        self.protocol_state = ""

    # ------------------------------------------------------------------ helpers
    def _report(self) -> Mapping[str, Any]:
        return self.bridge.report or {}

    def _evse(self) -> Mapping[str, Any]:
        return self._report().get("evse") or {}

    def _present(self, report: Mapping[str, Any] | None) -> None:
        """Measured output and station limits of ``report`` into the stack's context."""
        if report is None:
            return
        ctx = self.evse_data_context
        ctx.present_voltage = round(num(report, "present_voltage_v"), 1)
        ctx.present_current = round(num(report, "present_current_a"), 1)
        evse = report.get("evse") or {}
        dc = ctx.session_limits.dc_limits
        dc.max_voltage = num(evse, "max_voltage_v")
        dc.min_voltage = num(evse, "min_discharge_voltage_v") if self.bridge.bpt else None
        dc.max_charge_current = num(evse, "max_charge_current_a")
        dc.max_charge_power = num(evse, "max_charge_power_w")
        dc.min_charge_power = 0.0
        if self.bridge.bpt:
            dc.max_discharge_current = num(evse, "max_discharge_current_a")
            dc.max_discharge_power = num(evse, "max_discharge_power_w")
            dc.min_discharge_power = 0.0
        else:  # the stack reads a discharge limit > 0 as "discharging" in -2 / DIN
            dc.max_discharge_current = dc.max_discharge_power = dc.min_discharge_power = None

    def _ev_limits(self) -> dict[str, Any]:
        """The vehicle's limits as the stack decoded them (charge loop, else discovery)."""
        ev = self.ev_data_context
        out: dict[str, Any] = {}
        for limits in (ev.rated_limits.dc_limits, ev.session_limits.dc_limits):
            for ours, theirs in (
                ("max_voltage_v", "max_voltage"),
                ("min_voltage_v", "min_voltage"),
                ("max_charge_current_a", "max_charge_current"),
                ("max_charge_power_w", "max_charge_power"),
                ("max_discharge_current_a", "max_discharge_current"),
                ("max_discharge_power_w", "max_discharge_power"),
            ):
                value = _opt(limits, theirs)
                if value is not None and (value > 0 or ours.startswith("max_discharge")):
                    out[ours] = abs(value)
        soc = _opt(ev, "present_soc")
        if soc is not None:
            out["soc"] = soc
        present = _opt(ev, "present_voltage")
        if present is not None and present > 0:
            out["present_voltage_v"] = present
        return out

    def _protocol(self) -> Protocol | None:
        try:
            return self.get_selected_protocol()
        except Exception:  # before SupportedAppProtocol
            return None

    # ------------------------------------------------------------------ session
    async def set_status(self, status: ServiceStatus) -> None:
        log.info("iso15118_status", status=str(status.value))

    async def set_present_protocol_state(self, state: Any) -> None:
        name = type(state).__name__
        self.protocol_state = name
        if name == "SessionSetup":
            self.bridge.reset()
            self.bridge.advance(Phase.SESSION_SETUP)
        elif name in ("WeldingDetection", "DCWeldingDetection"):
            # the vehicle opened its contactors after PowerDeliveryRes(Stop)
            if self.bridge.advance(Phase.WELDING_DETECTION):
                self._present(await self.bridge.update(contactors_closed=False))
        elif name == "SessionStop" and self.bridge.at_least(Phase.SESSION_SETUP):
            self.bridge.advance(Phase.SESSION_STOP)

    async def get_evse_id(self, protocol: Protocol) -> str:
        if protocol == Protocol.DIN_SPEC_70121:
            # DIN SPEC 91286 hexBinary: digits as they are, '*' -> A, other letters dropped
            return "".join("A" if c == "*" else c for c in self.evse_id if c.isdigit() or c == "*")
        return self.evse_id

    async def get_supported_energy_transfer_modes(
        self, protocol: Protocol
    ) -> list[EnergyTransferModeEnum]:
        return [EnergyTransferModeEnum.DC_EXTENDED]

    async def get_energy_service_list(self) -> ServiceList:
        ids = [ServiceV20.DC.id] + ([ServiceV20.DC_BPT.id] if self.offer_bpt else [])
        return ServiceList(services=[Service(service_id=i, free_service=False) for i in ids])

    async def get_service_parameter_list(self, service_id: int) -> ServiceParameterList | None:
        return await super().get_service_parameter_list(service_id)

    def is_eim_authorized(self) -> bool:
        return False

    async def is_authorized(
        self,
        id_token: str | None = None,
        id_token_type: Any = None,
        certificate_chain: bytes | None = None,
        hash_data: Any = None,
    ) -> AuthorizationResponse:
        self.bridge.advance(Phase.AUTHORIZATION)
        decided = await self.bridge.authorization()
        protocol = self._protocol()
        if protocol == Protocol.DIN_SPEC_70121:
            ok: Any = ResponseCodeDIN.OK
        elif protocol is not None and protocol.name.startswith("ISO_15118_20"):
            ok = ResponseCodeV20.OK
        else:
            ok = ResponseCodeV2.OK
        status = {
            True: AuthorizationStatus.ACCEPTED,
            None: AuthorizationStatus.ONGOING,
            False: AuthorizationStatus.REJECTED,
        }[decided]
        log.info("iso15118_authorization", status=status.value, state=self.bridge.state)
        return AuthorizationResponse(authorization_status=status, certificate_response_status=ok)

    def ready_to_charge(self) -> bool:
        return True

    async def get_schedule_exchange_params(
        self, selected_energy_service: Any, control_mode: ControlMode, schedule_exchange_req: Any
    ) -> Any:
        self.bridge.control = "dynamic" if control_mode == ControlMode.DYNAMIC else "scheduled"
        self.bridge.advance(Phase.PARAMETER_DISCOVERY)
        self._present(await self.bridge.update(**self._ev_limits()))
        return await super().get_schedule_exchange_params(
            selected_energy_service, control_mode, schedule_exchange_req
        )

    async def session_ended(self, current_state: str, reason: str) -> None:
        bridge = self.bridge
        log.info("iso15118_session_ended", state=current_state, reason=reason)
        if bridge.phase is Phase.NONE:
            return
        bridge.advance(Phase.SESSION_STOP)
        report = await bridge.update()
        if report is not None and report.get("state") in ("authorized", "allocated"):
            # the vehicle left before the energy transfer: end bptd's session as well
            try:
                await bridge.client.call("stop", connector=bridge.connector)
            except Exception as exc:
                log.warning("iso15118_stop_failed", error=str(exc))
        await bridge.end()
        bridge.reset()

    async def update_data_link(self, action: SessionStopAction) -> None:
        log.info("iso15118_data_link", action=str(action.value))

    async def send_display_params(self) -> None:
        pass

    async def send_rated_limits(self) -> None:
        self._present(await self.bridge.update(**self._ev_limits()))

    async def get_cp_state(self) -> CpState:
        report = await self.bridge.status()
        cp = (report or {}).get("cp")
        pwm = (report or {}).get("state") not in ("idle", "finished", "fault", None)
        return {
            "A": CpState.A1,
            "B": CpState.B2 if pwm else CpState.B1,
            "C": CpState.C2 if pwm else CpState.C1,
            "D": CpState.D2 if pwm else CpState.D1,
            "E": CpState.E,
            "F": CpState.F,
        }.get(str(cp), CpState.UNKNOWN)

    async def get_evse_status(self) -> EVSEStatus | None:
        if self._stop_wanted():
            return EVSEStatus(notification_max_delay=0, evse_notification=NotificationV20.TERMINATE)
        return None

    def _stop_wanted(self) -> bool:
        """bptd ends the transfer (stop command, OCPP, a fault) while the vehicle charges."""
        report = self._report()
        return self.bridge.at_least(Phase.POWER_DELIVERY_START) and (
            bool(report.get("stop_requested")) or report.get("state") == "fault"
        )

    # ------------------------------------------------------------------ DC: discovery
    async def get_dc_evse_status(self) -> DCEVSEStatus:
        report = self._report()
        isolation = {
            "valid": IsolationLevel.VALID,
            "warning": IsolationLevel.WARNING,
            "fault": IsolationLevel.FAULT,
        }.get(str(report.get("isolation")), IsolationLevel.INVALID)
        code = DCEVSEStatusCode.EVSE_READY
        notification = EVSENotification.NONE
        if report.get("state") == "fault":
            code = DCEVSEStatusCode.EVSE_EMERGENCY_SHUTDOWN
            notification = EVSENotification.STOP_CHARGING
        elif self._stop_wanted():
            code = DCEVSEStatusCode.EVSE_SHUTDOWN
            notification = EVSENotification.STOP_CHARGING
        elif report.get("state") == "cable_check" and not report.get("cable_check_done"):
            code = DCEVSEStatusCode.EVSE_ISOLATION_MONITORING_ACTIVE
        return DCEVSEStatus(
            evse_notification=notification,
            notification_max_delay=0,
            evse_isolation_status=isolation,
            evse_status_code=code,
        )

    async def get_dc_charge_parameters(self) -> DCEVSEChargeParameter:
        """-2 / DIN ChargeParameterDiscoveryRes: the station's limits, charge only."""
        self.bridge.bpt = False
        self.bridge.control = "scheduled"
        self.bridge.advance(Phase.PARAMETER_DISCOVERY)
        report = await self.bridge.update(**self._ev_limits())
        self._present(report)
        evse = self._evse()
        return DCEVSEChargeParameter(
            dc_evse_status=await self.get_dc_evse_status(),
            evse_maximum_power_limit=_pv(PVEVSEMaxPowerLimit, num(evse, "max_charge_power_w"), "W"),
            evse_maximum_current_limit=_pv(
                PVEVSEMaxCurrentLimit, num(evse, "max_charge_current_a"), "A"
            ),
            evse_maximum_voltage_limit=_pv(PVEVSEMaxVoltageLimit, num(evse, "max_voltage_v"), "V"),
            evse_minimum_current_limit=_pv(PVEVSEMinCurrentLimit, MIN_CURRENT_A, "A"),
            evse_minimum_voltage_limit=_pv(PVEVSEMinVoltageLimit, num(evse, "min_voltage_v"), "V"),
            evse_peak_current_ripple=_pv(PVEVSEPeakCurrentRipple, 2, "A"),
        )

    async def get_dc_charge_params_v20(
        self, energy_service: ServiceV20
    ) -> DCChargeParameterDiscoveryResParams | BPTDCChargeParameterDiscoveryResParams:
        """-20 DC_ChargeParameterDiscoveryRes: the station's limits (discharge with BPT)."""
        self.bridge.bpt = energy_service == ServiceV20.DC_BPT
        self.bridge.advance(Phase.PARAMETER_DISCOVERY)
        report = await self.bridge.update()
        self._present(report)
        evse = self._evse()
        params = DCChargeParameterDiscoveryResParams(
            evse_max_charge_power=_r(num(evse, "max_charge_power_w")),
            evse_min_charge_power=_r(MIN_POWER_W),
            evse_max_charge_current=_r(num(evse, "max_charge_current_a")),
            evse_min_charge_current=_r(MIN_CURRENT_A),
            evse_max_voltage=_r(num(evse, "max_voltage_v")),
            evse_min_voltage=_r(num(evse, "min_voltage_v")),
        )
        if energy_service != ServiceV20.DC_BPT:
            return params
        return BPTDCChargeParameterDiscoveryResParams(
            **params.dict(),
            evse_max_discharge_power=_r(num(evse, "max_discharge_power_w")),
            evse_min_discharge_power=_r(MIN_POWER_W),
            evse_max_discharge_current=_r(num(evse, "max_discharge_current_a")),
            evse_min_discharge_current=_r(MIN_CURRENT_A),
        )

    # ------------------------------------------------------------------ DC: energizing
    async def start_cable_check(self) -> None:
        self.bridge.advance(Phase.CABLE_CHECK)
        self._present(await self.bridge.update(**self._ev_limits()))
        await self.bridge.prepare()

    async def is_contactor_closed(self) -> bool | None:
        bridge = self.bridge
        if not bridge.at_least(Phase.POWER_DELIVERY_START):
            # cable check: bptd closes the output for the insulation test
            report = await bridge.wait(
                lambda r: r.get("state") in OUTPUT_CLOSED or r.get("state") == "fault",
                self.progress_wait_s,
            )
            self._present(report)
            state = (report or {}).get("state")
            if state == "fault":
                return False
            return True if state in OUTPUT_CLOSED else None
        # PowerDelivery(Start): bptd moves to energy_transfer once precharge matched
        report = await bridge.wait(
            lambda r: r.get("state") in ("energy_transfer", "fault"), self.delivery_wait_s
        )
        self._present(report)
        closed = (report or {}).get("state") == "energy_transfer"
        if not closed:
            log.warning("iso15118_not_energized", state=bridge.state)
        return closed

    async def get_cable_check_status(self) -> IsolationLevel | None:
        report = await self.bridge.wait(
            lambda r: bool(r.get("cable_check_done")) or r.get("state") not in OUTPUT_CLOSED,
            self.progress_wait_s,
        )
        self._present(report)
        report = report or {}
        if report.get("state") == "fault":
            fault = report.get("fault")
            log.warning("iso15118_cable_check_failed", fault=fault)
            return IsolationLevel.FAULT if fault == "insulation_fault" else IsolationLevel.INVALID
        if report.get("cable_check_done"):
            return (
                IsolationLevel.WARNING if report.get("isolation") == "warning" else
                IsolationLevel.VALID
            )  # fmt: skip
        if report.get("state") not in OUTPUT_CLOSED:
            return IsolationLevel.INVALID if report.get("state") == "finished" else None
        return None

    async def send_charging_command(
        self,
        ev_target_voltage: float | None,
        ev_target_current: float | None,
        is_precharge: bool = False,
        is_session_bpt: bool = False,
    ) -> None:
        bridge = self.bridge
        fields = self._ev_limits()
        if ev_target_voltage is not None:
            fields["target_voltage_v"] = ev_target_voltage
        if ev_target_current is not None:
            fields["target_current_a"] = ev_target_current
        if not bridge.at_least(Phase.POWER_DELIVERY_START):
            bridge.advance(Phase.PRECHARGE)
            fields.setdefault("target_current_a", 0.0)
            await bridge.update(**fields)
            target = num(fields, "target_voltage_v")
            report = await bridge.wait(
                lambda r: (
                    abs(num(r, "present_voltage_v") - target) < 2.0 or r.get("state") != "precharge"
                ),
                self.progress_wait_s if target > 0 else 0.0,
            )
        else:
            bridge.advance(Phase.CHARGE_LOOP)
            report = await bridge.update(**fields)
        self._present(report)

    async def set_hlc_charging(self, is_ongoing: bool) -> None:
        if is_ongoing:
            # PowerDeliveryReq(Start): the vehicle closed its contactors
            self.bridge.advance(Phase.POWER_DELIVERY_START)
            self._present(await self.bridge.update(contactors_closed=True))
        elif self.bridge.at_least(Phase.POWER_DELIVERY_START):
            self.bridge.advance(Phase.POWER_DELIVERY_STOP)
            self._present(await self.bridge.update())

    async def stop_charger(self) -> None:
        bridge = self.bridge
        if bridge.phase is Phase.NONE:
            return
        if not bridge.at_least(Phase.POWER_DELIVERY_STOP):
            return  # the session ends otherwise; session_ended tells bptd
        report = await bridge.wait(
            lambda r: (
                abs(num(r, "present_current_a")) < STOP_CURRENT_A or r.get("state") in OUTPUT_OPEN
            ),
            self.delivery_wait_s,
        )
        self._present(report)

    async def is_contactor_opened(self) -> bool:
        report = await self.bridge.wait(
            lambda r: r.get("state") in OUTPUT_OPEN, self.delivery_wait_s
        )
        self._present(report)
        opened = (report or {}).get("state") in OUTPUT_OPEN
        if not opened:
            log.warning("iso15118_output_not_open", state=self.bridge.state)
        return opened

    async def get_evse_present_voltage(self, protocol: Protocol) -> Any:
        if self.bridge.phase is Phase.WELDING_DETECTION:
            self._present(await self.bridge.update())
        return await super().get_evse_present_voltage(protocol)

    async def is_evse_current_limit_achieved(self) -> bool:
        return bool(self._report().get("power_limit_reached"))

    async def is_evse_voltage_limit_achieved(self) -> bool:
        return False

    async def is_evse_power_limit_achieved(self) -> bool:
        return bool(self._report().get("power_limit_reached"))


__all__ = ["AUTHORIZED", "BptdEVSEController"]
