"""OCPP 1.6J: messages and the handlers of the CSMS's calls."""

from __future__ import annotations

import time
from typing import Any

import structlog
from ocpp.routing import on
from ocpp.v16 import ChargePoint as _ChargePoint16
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from bptd.ocpp import profiles as prof
from bptd.ocpp.adapter import Adapter, Identity, Message, StationMixin, Transaction, actions_of
from bptd.ocpp.mapping import REASONS_16, Reading
from bptd.ocpp.profiles import iso

log = structlog.get_logger(__name__)


def _now() -> str:
    return iso(time.time())


def _value(r: Reading) -> str:
    return f"{r.value:.3f}".rstrip("0").rstrip(".") if r.value % 1 else str(int(r.value))


def meter_value(readings: list[Reading], context: str, t: float | None = None) -> dict[str, Any]:
    return {
        "timestamp": iso(time.time() if t is None else t),
        "sampled_value": [
            {
                "value": _value(r),
                "context": context,
                "format": "Raw",
                "measurand": r.measurand,
                "location": r.location,
                "unit": r.unit,
            }
            for r in readings
        ],
    }


class V16(Adapter):
    version = "1.6"
    subprotocol = "ocpp1.6"

    def charge_point(self, station_id: str, ws: Any, response_timeout: float) -> Any:
        return ChargePoint16(station_id, ws, self.fe, response_timeout)

    def boot(self, identity: Identity, reason: str) -> Message:
        payload = {
            "charge_point_vendor": identity.vendor[:20],
            "charge_point_model": identity.model[:20],
            "firmware_version": identity.firmware[:50],
        }
        if identity.serial:
            payload["charge_point_serial_number"] = identity.serial[:25]
        return "BootNotification", payload

    def status(self, conn: Any, status: str) -> Message:
        payload: dict[str, Any] = {
            "connector_id": conn.index,
            "error_code": "OtherError" if status == "Faulted" else "NoError",
            "status": status,
            "timestamp": _now(),
        }
        if status == "Faulted" and conn.fault:
            payload["vendor_error_code"] = str(conn.fault)[:50]
            payload["info"] = str(conn.snap.get("fault_detail") or conn.fault)[:50]
        return "StatusNotification", payload

    def tx_started(self, tx: Transaction, readings: list[Reading], trigger: str) -> list[Any]:
        return [
            (
                "StartTransaction",
                {
                    "connector_id": tx.evse,
                    "id_tag": (tx.id_tag or "")[:20],
                    "meter_start": round(tx.meter_start_wh),
                    "timestamp": iso(tx.started),
                },
                {"tx": tx.tx_id},
            )
        ]

    def tx_updated(
        self, tx: Transaction, readings: list[Reading], trigger: str, context: str
    ) -> list[Message]:
        return [
            (
                "MeterValues",
                {
                    "connector_id": tx.evse,
                    "transaction_id": {"$tx": tx.tx_id},
                    "meter_value": [meter_value(readings, context)],
                },
            )
        ]

    def tx_ended(self, tx: Transaction, readings: list[Reading], reason: str) -> list[Message]:
        stop = next(
            (r.value for r in readings if r.measurand == "Energy.Active.Import.Register"), None
        )
        if stop is None:
            stop = self.fe.registers.value(tx.connector)[0]
        payload: dict[str, Any] = {
            "transaction_id": {"$tx": tx.tx_id},
            "meter_stop": round(stop),
            "timestamp": _now(),
            "reason": REASONS_16.get(reason, "Other"),
        }
        if tx.id_tag:
            payload["id_tag"] = tx.id_tag[:20]
        if readings:
            payload["transaction_data"] = [meter_value(readings, "Transaction.End")]
        return [("StopTransaction", payload)]

    def meter_values(self, conn: Any, readings: list[Reading], context: str) -> Message:
        payload: dict[str, Any] = {
            "connector_id": conn.index,
            "meter_value": [meter_value(readings, context)],
        }
        if conn.tx is not None:
            theirs = self.fe.queue.tx_ids.get(conn.tx.tx_id)
            if theirs is not None:
                payload["transaction_id"] = theirs
        return "MeterValues", payload

    def resolve(self, item: Any, queue: Any) -> dict[str, Any]:
        payload = dict(item.payload)
        ref = payload.get("transaction_id")
        if isinstance(ref, dict) and "$tx" in ref:
            theirs = queue.tx_ids.get(ref["$tx"])
            if theirs is None:
                if item.action == "MeterValues":
                    payload.pop("transaction_id")
                else:  # its StartTransaction was given up: nothing better to send
                    payload["transaction_id"] = 0
            else:
                payload["transaction_id"] = theirs
        return payload

    def acked(self, item: Any, result: Any) -> tuple[str, Any] | None:
        if item.action != "StartTransaction":
            return None
        own = self._own_id(item)
        info = getattr(result, "id_tag_info", None) or {}
        if info.get("status") not in (None, "Accepted") and own is not None:
            log.warning("ocpp_id_tag_refused", tx=own, status=info.get("status"))
            self.fe.spawn(self.fe.stop_for_invalid_id(own), name="invalid id")
        return None if own is None else (own, int(result.transaction_id))

    def _own_id(self, item: Any) -> str | None:
        return item.meta.get("tx") if item.meta else None


class ChargePoint16(StationMixin, _ChargePoint16):
    actions = actions_of(Action)

    def __init__(self, station_id: str, ws: Any, fe: Any, response_timeout: float) -> None:
        super().__init__(station_id, ws, response_timeout)
        self._setup(fe)

    # ------------------------------------------------------------------ remote control
    @on("RemoteStartTransaction")
    async def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: Any = None, **_: Any
    ) -> Any:
        fe = self.fe
        conn = fe.conn(connector_id) if connector_id else fe.pick_connector()
        if conn is None or fe.start_refusal(conn) is not None:
            why = "no such connector" if conn is None else fe.start_refusal(conn)
            log.info("ocpp_remote_start_rejected", connector=connector_id, reason=why)
            return call_result.RemoteStartTransaction(status="Rejected")
        if charging_profile is not None:
            if charging_profile.get("charging_profile_purpose") != "TxProfile":
                return call_result.RemoteStartTransaction(status="Rejected")
            try:
                fe.profiles.install(prof.from_v16(conn.index, charging_profile, "", time.time()))
            except prof.ProfileError as exc:
                log.info("ocpp_remote_start_profile_rejected", reason=exc.info)
                return call_result.RemoteStartTransaction(status="Rejected")

        async def authorize() -> bool:
            res = await fe.send("Authorize", {"id_tag": id_tag})
            return (getattr(res, "id_tag_info", None) or {}).get("status") == "Accepted"

        conn.starting = True  # no second start before this one runs
        self.later(lambda: _start(fe, conn, id_tag, authorize))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    async def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        fe = self.fe
        tx = self._tx_of(transaction_id)
        if tx is None:
            return call_result.RemoteStopTransaction(status="Rejected")
        self.later(lambda: fe.remote_stop(tx))
        return call_result.RemoteStopTransaction(status="Accepted")

    def _tx_of(self, transaction_id: Any) -> Transaction | None:
        for c in self.fe.conns:
            if c.tx is not None and self.fe.queue.tx_ids.get(c.tx.tx_id) == transaction_id:
                return c.tx
        return None

    @on("ChangeAvailability")
    async def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        if connector_id and self.fe.conn(connector_id) is None:
            return call_result.ChangeAvailability(status="Rejected")
        status = self.fe.change_availability(connector_id or None, type == "Operative")
        return call_result.ChangeAvailability(status=status)

    @on("UnlockConnector")
    async def on_unlock(self, connector_id: int, **_: Any) -> Any:
        return call_result.UnlockConnector(status="NotSupported")

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    @on("ClearCache")
    async def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status="Rejected")

    # ------------------------------------------------------------------ smart charging
    @on("SetChargingProfile")
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        fe = self.fe
        purpose = cs_charging_profiles.get("charging_profile_purpose")
        rejected = call_result.SetChargingProfile(status="Rejected")
        if connector_id != 0 and fe.conn(connector_id) is None:
            return rejected
        tx_ref = None
        if purpose == "ChargePointMaxProfile" and connector_id != 0:
            return rejected
        if purpose == "TxProfile":
            conn = fe.conn(connector_id)
            if conn is None or conn.tx is None:
                return rejected
            wanted = cs_charging_profiles.get("transaction_id")
            if wanted is not None and self._tx_of(wanted) is not conn.tx:
                return rejected
            tx_ref = conn.tx.tx_id
        try:
            p = prof.from_v16(connector_id, cs_charging_profiles, tx_ref, time.time())
            fe.profiles.install(p)
        except prof.ProfileError as exc:
            log.info("ocpp_profile_rejected", reason=exc.reason, info=exc.info)
            return rejected
        log.info("ocpp_profile_installed", id=p.id, purpose=p.purpose, connector=connector_id)
        fe.profiles_changed()
        return call_result.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        purpose = prof.PURPOSES.get(charging_profile_purpose or "")
        removed = self.fe.profiles.clear(id, connector_id, purpose, stack_level)
        if removed:
            self.fe.profiles_changed()
        return call_result.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @on("GetCompositeSchedule")
    async def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        unit = charging_rate_unit or "W"
        result = self.fe.composite_schedule(connector_id, int(duration), unit)
        if result is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        start, periods = result
        schedule = {
            "duration": int(duration),
            "start_schedule": iso(start),
            "charging_rate_unit": unit,
            "charging_schedule_period": [
                {"start_period": p["start_period"], "limit": p["limit"]} for p in periods
            ],
        }
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=iso(start),
            charging_schedule=schedule,
        )

    # ------------------------------------------------------------------ management
    @on("Reset")
    async def on_reset(self, type: str, **_: Any) -> Any:
        if self.fe.resetting:
            return call_result.Reset(status="Rejected")
        fe = self.fe
        hard = type == "Hard"
        fe.resetting = True
        self.later(lambda: fe.reset(hard))
        return call_result.Reset(status="Accepted")

    @on("TriggerMessage")
    async def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        fe = self.fe
        if connector_id is not None and connector_id != 0 and fe.conn(connector_id) is None:
            return call_result.TriggerMessage(status="Rejected")
        conns = [fe.conn(connector_id)] if connector_id else list(fe.conns)
        if requested_message == "BootNotification":
            send = fe.boot_now
        elif requested_message == "LogStatusNotification":  # a 2.x message
            send = None
        else:
            send = fe.common_trigger(requested_message, conns)
        if send is None:
            return call_result.TriggerMessage(status="NotImplemented")
        self.later(send)
        return call_result.TriggerMessage(status="Accepted")

    @on("GetConfiguration")
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        dm = self.fe.devmodel
        known, unknown = [], []
        names = key if key else [v.v16 for v in dm.visible()]
        for name in names:
            var = dm.find16(name)
            if var is None:
                unknown.append(name)
                continue
            known.append(
                {"key": var.v16, "readonly": var.readonly, "value": dm.text(var.key)[:500]}
            )
        return call_result.GetConfiguration(
            configuration_key=known or None, unknown_key=unknown or None
        )

    @on("ChangeConfiguration")
    async def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        dm = self.fe.devmodel
        var = dm.find16(key)
        if var is None:
            return call_result.ChangeConfiguration(status="NotSupported")
        problem = dm.set(var.key, value)
        if problem:
            log.info("ocpp_configuration_refused", key=key, value=value, reason=problem)
            return call_result.ChangeConfiguration(status="Rejected")
        self.fe._save()
        log.info("ocpp_configuration_changed", key=key, value=value)
        return call_result.ChangeConfiguration(status="Accepted")


async def _start(fe: Any, conn: Any, id_tag: str, authorize: Any) -> None:
    conn.starting = False  # remote_start takes it again at once
    fe.remote_start(conn, id_tag, "ISO14443", None, authorize)
