"""OCPP 2.0.1 and 2.1: messages and the handlers of the CSMS's calls. One EVSE per bptd
connector (EVSE id = its position in the config, connector id 1). 2.1 adds the V2X fields
of charging profiles (``setpoint``, ``dischargeLimit``, ``operationMode``), Dynamic
profiles with UpdateDynamicSchedule, and V2X parameters in NotifyEVChargingNeeds."""

from __future__ import annotations

import time
from typing import Any

import structlog
from ocpp.routing import on
from ocpp.v21 import ChargePoint as _ChargePoint21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21
from ocpp.v201 import ChargePoint as _ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from bptd.ocpp import profiles as prof
from bptd.ocpp.adapter import Adapter, Identity, Message, StationMixin, Transaction, actions_of
from bptd.ocpp.devmodel import Var
from bptd.ocpp.mapping import REASONS_2X, Reading, connector_status
from bptd.ocpp.profiles import iso

log = structlog.get_logger(__name__)

#: why a transaction ended -> the triggerReason of its Ended event
END_TRIGGERS = {
    "Remote": "RemoteStop",
    "EVDisconnected": "EVDeparted",
    "SoftReset": "ResetCommand",
    "HardReset": "ResetCommand",
    "ImmediateReset": "ResetCommand",
    "DeAuthorized": "Deauthorized",
    "Local": "StopAuthorized",
    "StoppedByEV": "ChargingStateChanged",
}


def _now() -> str:
    return iso(time.time())


def _info(reason: str, additional: str) -> dict[str, Any]:
    return {"reason_code": reason[:20], "additional_info": additional[:1024]}


def meter_value(readings: list[Reading], context: str, t: float | None = None) -> dict[str, Any]:
    return {
        "timestamp": iso(time.time() if t is None else t),
        "sampled_value": [
            {
                "value": r.value,
                "context": context,
                "measurand": r.measurand,
                "location": r.location,
                "unit_of_measure": {"unit": r.unit},
            }
            for r in readings
        ],
    }


class V2(Adapter):
    def __init__(self, fe: Any) -> None:
        super().__init__(fe)
        self.version = fe.version
        self.subprotocol = "ocpp2.1" if fe.version == "2.1" else "ocpp2.0.1"

    def charge_point(self, station_id: str, ws: Any, response_timeout: float) -> Any:
        cls = ChargePoint21 if self.version == "2.1" else ChargePoint201
        return cls(station_id, ws, self.fe, response_timeout)

    def boot(self, identity: Identity, reason: str) -> Message:
        station: dict[str, Any] = {
            "vendor_name": identity.vendor[:50],
            "model": identity.model[:20],
            "firmware_version": identity.firmware[:50],
        }
        if identity.serial:
            station["serial_number"] = identity.serial[:25]
        return "BootNotification", {"charging_station": station, "reason": reason or "PowerUp"}

    def status(self, conn: Any, status: str) -> Message:
        return "StatusNotification", {
            "timestamp": _now(),
            "connector_status": connector_status(status),
            "evse_id": conn.index,
            "connector_id": 1,
        }

    def _event(
        self,
        tx: Transaction,
        event_type: str,
        trigger: str,
        info: dict[str, Any],
        meter: list[dict[str, Any]] | None = None,
        t: float | None = None,
    ) -> Message:
        payload: dict[str, Any] = {
            "event_type": event_type,
            "timestamp": iso(time.time() if t is None else t),
            "trigger_reason": trigger,
            "seq_no": tx.next_seq(),
            "transaction_info": {"transaction_id": tx.tx_id, **info},
        }
        if meter:
            payload["meter_value"] = meter
        if not self.fe.online:
            payload["offline"] = True
        return "TransactionEvent", payload

    def tx_started(self, tx: Transaction, readings: list[Reading], trigger: str) -> list[Any]:
        info: dict[str, Any] = {"charging_state": tx.charging_state or "EVConnected"}
        if tx.remote_start_id is not None:
            info["remote_start_id"] = tx.remote_start_id
        if self.version == "2.1" and tx.mode:
            info["operation_mode"] = tx.mode
        action, payload = self._event(
            tx, "Started", trigger, info,
            [meter_value(readings, "Transaction.Begin", tx.started)] if readings else None,
            t=tx.started,
        )  # fmt: skip
        payload["evse"] = {"id": tx.evse, "connector_id": 1}
        if tx.id_tag:
            payload["id_token"] = {"id_token": tx.id_tag[:255], "type": tx.id_type}
        return [(action, payload)]

    def tx_updated(
        self, tx: Transaction, readings: list[Reading], trigger: str, context: str
    ) -> list[Message]:
        return [self._event(tx, "Updated", trigger, {}, [meter_value(readings, context)])]

    def tx_charging_state(self, tx: Transaction, state: str) -> list[Message]:
        return [self._event(tx, "Updated", "ChargingStateChanged", {"charging_state": state})]

    def tx_mode(self, tx: Transaction, mode: str) -> list[Message]:
        if self.version != "2.1":
            return []
        return [self._event(tx, "Updated", "OperationModeChanged", {"operation_mode": mode})]

    def tx_ended(self, tx: Transaction, readings: list[Reading], reason: str) -> list[Message]:
        reason = REASONS_2X.get(reason, reason)
        info = {
            "charging_state": "Idle" if reason == "EVDisconnected" else "EVConnected",
            "stopped_reason": reason,
        }
        trigger = END_TRIGGERS.get(reason, "AbnormalCondition")
        meter = [meter_value(readings, "Transaction.End")] if readings else None
        return [self._event(tx, "Ended", trigger, info, meter)]

    def meter_values(self, conn: Any, readings: list[Reading], context: str) -> Message:
        return "MeterValues", {
            "evse_id": conn.index,
            "meter_value": [meter_value(readings, context)],
        }

    def acked(self, item: Any, result: Any) -> tuple[str, Any] | None:
        info = getattr(result, "id_token_info", None) or {}
        status = info.get("status")
        if item.payload.get("event_type") == "Started" and status not in (None, "Accepted"):
            tx_id = item.payload["transaction_info"]["transaction_id"]
            log.warning("ocpp_id_token_refused", tx=tx_id, status=status)
            self.fe.spawn(self.fe.stop_for_invalid_id(tx_id), name="invalid id")
        return None

    def ev_needs(self, conn: Any, snap: dict[str, Any]) -> Message | None:
        ev = snap.get("ev") or {}
        v21 = self.version == "2.1"
        bpt = bool(ev.get("bpt"))
        max_a = float(ev.get("max_charge_current_a") or 0.0)
        max_v = float(ev.get("max_voltage_v") or 0.0)
        dc: dict[str, Any] = {
            "ev_max_current": max_a if v21 else round(max_a),
            "ev_max_voltage": max_v if v21 else round(max_v),
        }
        if ev.get("soc") is not None:
            dc["state_of_charge"] = max(0, min(100, round(float(ev["soc"]))))
        needs: dict[str, Any] = {
            "requested_energy_transfer": "DC_BPT" if (bpt and v21) else "DC",
            "dc_charging_parameters": dc,
        }
        if v21:
            needs["available_energy_transfer"] = ["DC", "DC_BPT"] if bpt else ["DC"]
            needs["control_mode"] = "DynamicControl"
            v2x: dict[str, Any] = {"max_charge_current": max_a, "max_voltage": max_v}
            if bpt:
                v2x["max_discharge_current"] = float(ev.get("max_discharge_current_a") or 0.0)
            needs["v2x_charging_parameters"] = v2x
        payload: dict[str, Any] = {"charging_needs": needs, "evse_id": conn.index}
        if v21:
            payload["timestamp"] = _now()
        return "NotifyEVChargingNeeds", payload


class _Handlers2(StationMixin):
    """The handlers 2.0.1 and 2.1 share; ``R`` is the version's call_result module."""

    R: Any = result201
    v2x = False

    def _cr(self, name: str, **kwargs: Any) -> Any:
        return getattr(self.R, name)(**kwargs)

    # ------------------------------------------------------------------ remote control
    @on("RequestStartTransaction")
    async def on_request_start(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        fe = self.fe
        conn = fe.conn(evse_id) if evse_id else fe.pick_connector()
        refusal = "no such EVSE" if conn is None else fe.start_refusal(conn)
        if conn is None or refusal is not None:
            log.info("ocpp_remote_start_rejected", evse=evse_id, reason=refusal)
            return self._cr(
                "RequestStartTransaction",
                status="Rejected",
                status_info=_info("UnknownEvse" if conn is None else "Occupied", refusal or ""),
            )
        if charging_profile is not None:
            try:
                if charging_profile.get("charging_profile_purpose") != "TxProfile":
                    raise prof.ProfileError("InvalidProfile", "a remote start takes a TxProfile")
                fe.profiles.install(
                    prof.from_v2(conn.index, charging_profile, "", time.time(), self.v2x)
                )
            except prof.ProfileError as exc:
                return self._cr(
                    "RequestStartTransaction",
                    status="Rejected",
                    status_info=_info(exc.reason, exc.info),
                )
        token = str(id_token.get("id_token", ""))
        token_type = str(id_token.get("type", "Central"))

        async def authorize() -> bool:
            res = await fe.send("Authorize", {"id_token": id_token})
            return (getattr(res, "id_token_info", None) or {}).get("status") == "Accepted"

        conn.starting = True

        async def start() -> None:
            conn.starting = False
            fe.remote_start(conn, token, token_type, remote_start_id, authorize)

        self.later(start)
        return self._cr("RequestStartTransaction", status="Accepted")

    @on("RequestStopTransaction")
    async def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        tx = self.fe.tx_by_id(transaction_id)
        if tx is None:
            return self._cr(
                "RequestStopTransaction",
                status="Rejected",
                status_info=_info("TxNotFound", f"no transaction {transaction_id}"),
            )
        fe = self.fe
        self.later(lambda: fe.remote_stop(tx))
        return self._cr("RequestStopTransaction", status="Accepted")

    @on("ChangeAvailability")
    async def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        index = (evse or {}).get("id") or None
        if index and self.fe.conn(index) is None:
            return self._cr("ChangeAvailability", status="Rejected")
        status = self.fe.change_availability(index, operational_status == "Operative")
        return self._cr("ChangeAvailability", status=status)

    @on("UnlockConnector")
    async def on_unlock(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        conn = self.fe.conn(evse_id)
        if conn is None or connector_id != 1:
            return self._cr("UnlockConnector", status="UnknownConnector")
        if conn.tx is not None:
            return self._cr("UnlockConnector", status="OngoingAuthorizedTransaction")
        return self._cr(
            "UnlockConnector",
            status="UnlockFailed",
            status_info=_info("UnsupportedRequest", "the lock follows the charge session"),
        )

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return self._cr("DataTransfer", status="UnknownVendorId")

    @on("ClearCache")
    async def on_clear_cache(self, **_: Any) -> Any:
        return self._cr("ClearCache", status="Rejected")

    # ------------------------------------------------------------------ smart charging
    def _profile_rejected(self, reason: str, info: str) -> Any:
        log.info("ocpp_profile_rejected", reason=reason, info=info)
        return self._cr("SetChargingProfile", status="Rejected", status_info=_info(reason, info))

    @on("SetChargingProfile")
    async def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> Any:
        fe = self.fe
        purpose = charging_profile.get("charging_profile_purpose")
        if evse_id != 0 and fe.conn(evse_id) is None:
            return self._profile_rejected("UnknownEvse", f"no EVSE {evse_id}")
        if purpose not in prof.PURPOSES:
            return self._profile_rejected(
                "UnsupportedParam", f"chargingProfilePurpose {purpose} is not supported"
            )
        if purpose == "ChargingStationMaxProfile" and evse_id != 0:
            return self._profile_rejected("InvalidProfile", "a station maximum needs evseId 0")
        tx_ref = None
        if purpose == "TxProfile":
            conn = fe.conn(evse_id)
            wanted = charging_profile.get("transaction_id")
            if conn is None or conn.tx is None or (wanted is not None and wanted != conn.tx.tx_id):
                return self._profile_rejected("TxNotFound", "no such transaction on this EVSE")
            tx_ref = conn.tx.tx_id
        try:
            p = prof.from_v2(evse_id, charging_profile, tx_ref, time.time(), self.v2x)
            fe.profiles.install(p)
        except prof.ProfileError as exc:
            return self._profile_rejected(exc.reason, exc.info)
        log.info("ocpp_profile_installed", id=p.id, purpose=p.purpose, evse=evse_id, kind=p.kind)
        fe.profiles_changed()
        return self._cr("SetChargingProfile", status="Accepted")

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        c = charging_profile_criteria or {}
        purpose = c.get("charging_profile_purpose")
        removed = self.fe.profiles.clear(
            charging_profile_id,
            c.get("evse_id"),
            prof.PURPOSES.get(purpose) if purpose else None,
            c.get("stack_level"),
        )
        if removed:
            self.fe.profiles_changed()
        return self._cr("ClearChargingProfile", status="Accepted" if removed else "Unknown")

    @on("GetCompositeSchedule")
    async def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        unit = charging_rate_unit or "W"
        result = self.fe.composite_schedule(evse_id, int(duration), unit)
        if result is None:
            return self._cr(
                "GetCompositeSchedule",
                status="Rejected",
                status_info=_info("UnknownEvse", f"no EVSE {evse_id}"),
            )
        start, periods = result
        return self._cr(
            "GetCompositeSchedule",
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": int(duration),
                "schedule_start": iso(start),
                "charging_rate_unit": unit,
                "charging_schedule_period": periods,
            },
        )

    # ------------------------------------------------------------------ management
    @on("Reset")
    async def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        fe = self.fe
        if evse_id is not None and fe.conn(evse_id) is None:
            return self._cr("Reset", status="Rejected", status_info=_info("UnknownEvse", ""))
        if fe.resetting:
            return self._cr("Reset", status="Rejected", status_info=_info("ResetInProgress", ""))
        targets = [c for c in fe.conns if evse_id in (None, c.index)]
        if type == "OnIdle" and any(c.tx is not None for c in targets):
            self.later(lambda: fe.reset_on_idle(False, evse_id))
            return self._cr("Reset", status="Scheduled")
        if evse_id is None:
            fe.resetting = True
        resume = type == "ImmediateAndResume"  # 2.1: the frontend restarts, the power flow does not
        self.later(lambda: fe.reset(hard=type == "Immediate", evse=evse_id, stop_tx=not resume))
        return self._cr("Reset", status="Accepted")

    @on("TriggerMessage")
    async def on_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        fe = self.fe
        index = (evse or {}).get("id")
        if index and fe.conn(index) is None:
            return self._cr(
                "TriggerMessage", status="Rejected", status_info=_info("UnknownEvse", "")
            )
        conns = [fe.conn(index)] if index else list(fe.conns)
        send = None
        if requested_message == "BootNotification":
            if fe.boot_accepted:
                return self._cr(
                    "TriggerMessage",
                    status="Rejected",
                    status_info=_info("AlreadyAccepted", "the boot was accepted"),
                )
            send = fe.boot_now
        elif requested_message == "TransactionEvent":
            running = [c for c in conns if c.tx is not None]
            if not running:
                return self._cr(
                    "TriggerMessage",
                    status="Rejected",
                    status_info=_info("TxNotFound", "no transaction"),
                )

            async def send() -> None:
                for c in running:
                    fe.trigger_tx_update(c)
        elif requested_message != "DiagnosticsStatusNotification":  # a 1.6 message
            send = fe.common_trigger(requested_message, conns)

        if send is None:
            return self._cr("TriggerMessage", status="NotImplemented")
        self.later(send)
        return self._cr("TriggerMessage", status="Accepted")

    # ------------------------------------------------------------------ device model
    def _locate(
        self, component: dict[str, Any], variable: dict[str, Any]
    ) -> tuple[str, Var | None]:
        dm = self.fe.devmodel
        name = component.get("name", "")
        if name not in dm.components() or component.get("instance") is not None:
            return "UnknownComponent", None
        if component.get("evse") is not None:
            return "UnknownComponent", None
        var = dm.find2x(name, variable.get("name", ""), variable.get("instance"))
        if var is None:
            return "UnknownVariable", None
        return "Accepted", var

    def _variable_result(self, item: dict[str, Any]) -> tuple[dict[str, Any], Var | None]:
        """The result entry for one Get/SetVariables item and the variable it names (None
        when it is unknown or the attribute type is not ``Actual``)."""
        component, variable = item["component"], item["variable"]
        attribute = item.get("attribute_type", "Actual")
        status, var = self._locate(component, variable)
        res: dict[str, Any] = {
            "attribute_status": status,
            "attribute_type": attribute,
            "component": component,
            "variable": variable,
        }
        if var is not None and attribute != "Actual":
            res["attribute_status"] = "NotSupportedAttributeType"
            var = None
        return res, var

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        dm = self.fe.devmodel
        results = []
        for item in get_variable_data:
            res, var = self._variable_result(item)
            if var is not None:
                res["attribute_value"] = dm.text(var.key)[:2500]
            results.append(res)
        return self._cr("GetVariables", get_variable_result=results)

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        dm = self.fe.devmodel
        results = []
        for item in set_variable_data:
            res, var = self._variable_result(item)
            if var is not None:
                problem = dm.set(var.key, item["attribute_value"])
                if problem:
                    res["attribute_status"] = "Rejected"
                    res["attribute_status_info"] = _info(
                        "ReadOnly" if var.readonly else "InvalidValue", problem
                    )
            results.append(res)
        self.fe._save()
        return self._cr("SetVariables", set_variable_result=results)

    @on("GetBaseReport")
    async def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        fe = self.fe
        dm = fe.devmodel
        if report_base == "SummaryInventory":
            return self._cr("GetBaseReport", status="NotSupported")
        variables = [v for v in dm.visible() if report_base == "FullInventory" or not v.readonly]
        data = [
            {
                "component": {"name": v.component},
                "variable": {
                    "name": v.variable,
                    **({"instance": v.instance} if v.instance else {}),
                },
                "variable_attribute": [
                    {
                        "type": "Actual",
                        "value": dm.text(v.key)[:2500],
                        "mutability": "ReadOnly" if v.readonly else "ReadWrite",
                    }
                ],
                "variable_characteristics": {
                    "data_type": {"int": "integer", "bool": "boolean", "csl": "MemberList"}.get(
                        v.kind, "string"
                    ),
                    "supports_monitoring": False,
                },
            }
            for v in variables
        ]

        async def report() -> None:
            await fe.send(
                "NotifyReport",
                {"request_id": request_id, "generated_at": _now(), "seq_no": 0,
                 "report_data": data, "tbc": False},
            )  # fmt: skip

        self.later(report)
        return self._cr("GetBaseReport", status="Accepted")


class ChargePoint201(_Handlers2, _ChargePoint201):
    actions = actions_of(Action201)
    R = result201

    def __init__(self, station_id: str, ws: Any, fe: Any, response_timeout: float) -> None:
        super().__init__(station_id, ws, response_timeout)
        self._setup(fe)


class ChargePoint21(_Handlers2, _ChargePoint21):
    actions = actions_of(Action21)
    R = result21
    v2x = True

    def __init__(self, station_id: str, ws: Any, fe: Any, response_timeout: float) -> None:
        super().__init__(station_id, ws, response_timeout)
        self._setup(fe)

    @on("UpdateDynamicSchedule")
    async def on_update_dynamic_schedule(
        self, charging_profile_id: int, schedule_update: dict[str, Any], **_: Any
    ) -> Any:
        values: dict[str, float | None] = {}
        try:
            for key in ("limit", "discharge_limit", "setpoint"):
                if key in schedule_update:
                    x = float(schedule_update[key])
                    if key == "limit" and x < 0:
                        raise prof.ProfileError("InvalidValue", "limit is negative")
                    if key == "discharge_limit":
                        if x > 0:
                            raise prof.ProfileError("InvalidValue", "dischargeLimit must be <= 0")
                        x = abs(x)
                    values[key] = x
            self.fe.profiles.replace_period(charging_profile_id, **values)
        except prof.ProfileError as exc:
            log.info("ocpp_dynamic_update_rejected", reason=exc.reason, info=exc.info)
            return result21.UpdateDynamicSchedule(
                status="Rejected", status_info=_info(exc.reason, exc.info)
            )
        log.info("ocpp_dynamic_update", profile=charging_profile_id, values=values)
        self.fe.profiles_changed()
        return result21.UpdateDynamicSchedule(status="Accepted")


__all__ = ["V2", "ChargePoint21", "ChargePoint201"]
