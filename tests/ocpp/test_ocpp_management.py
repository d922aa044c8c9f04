"""TriggerMessage, configuration / device model, proper refusals, and Reset (soft and hard)
for every version."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.exceptions import NotSupportedError
from ocpp_csms import Csms
from ocpp_rig import Station
from ocpp_steps import ended, remote_start, remote_stop

VERSIONS = ("1.6", "2.0.1", "2.1")


def trigger(csms: Csms, message: str, evse: int | None = None) -> Any:
    if csms.version == "1.6":
        return csms.call("TriggerMessage", requested_message=message, connector_id=evse)
    return csms.call(
        "TriggerMessage",
        requested_message=message,
        evse=None if evse is None else {"id": evse, "connector_id": 1},
    )


def first_evse(p: dict[str, Any]) -> bool:
    return p.get("connectorId") == 1 if "evseId" not in p else p["evseId"] == 1


def check_triggers(csms: Csms) -> None:
    # the statuses after the boot, one per connector
    csms.wait("StatusNotification", lambda p: not first_evse(p))
    csms.wait("StatusNotification", first_evse)
    mark = csms.mark()
    assert trigger(csms, "Heartbeat").status == "Accepted"
    csms.wait("Heartbeat", after=mark)
    mark = csms.mark()
    assert trigger(csms, "StatusNotification", 1).status == "Accepted"
    csms.wait("StatusNotification", first_evse, after=mark)
    mark = csms.mark()
    assert trigger(csms, "MeterValues", 1).status == "Accepted"
    meter = csms.wait("MeterValues", after=mark).payload
    assert meter["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    assert trigger(csms, "StatusNotification", 9).status == "Rejected"  # no such connector
    mark = csms.mark()
    if csms.version == "1.6":
        assert trigger(csms, "BootNotification").status == "Accepted"
        csms.wait("BootNotification", after=mark)
    else:
        # the boot was accepted: a second one is refused (OCPP 2.x F06)
        assert trigger(csms, "BootNotification").status == "Rejected"
        assert trigger(csms, "SignV2GCertificate").status == "NotImplemented"
        assert trigger(csms, "LogStatusNotification").status == "Accepted"
        csms.wait("LogStatusNotification", after=mark)


def check_configuration(csms: Csms) -> None:
    if csms.version == "1.6":
        res = csms.call("GetConfiguration", key=["MeterValueSampleInterval", "Nope"])
        assert res.configuration_key == [
            {"key": "MeterValueSampleInterval", "readonly": False, "value": "1"}
        ]
        assert res.unknown_key == ["Nope"]
        assert (
            csms.call("ChangeConfiguration", key="HeartbeatInterval", value="120").status
            == "Accepted"
        )
        assert (
            csms.call("ChangeConfiguration", key="HeartbeatInterval", value="x").status
            == "Rejected"
        )
        assert (
            csms.call("ChangeConfiguration", key="NumberOfConnectors", value="5").status
            == "Rejected"
        )
        assert csms.call("ChangeConfiguration", key="Nope", value="1").status == "NotSupported"
        res = csms.call("GetConfiguration", key=["HeartbeatInterval", "NumberOfConnectors"])
        assert [k["value"] for k in res.configuration_key] == ["120", "2"]
        keys = {k["key"] for k in csms.call("GetConfiguration").configuration_key}
        assert {"MeterValuesSampledData", "ChargeProfileMaxStackLevel"} <= keys
        return

    def var(component: str, name: str, instance: str | None = None, **extra: Any) -> dict[str, Any]:
        variable = {"name": name} if instance is None else {"name": name, "instance": instance}
        return {"component": {"name": component}, "variable": variable, **extra}

    res = csms.call(
        "SetVariables",
        set_variable_data=[
            var("OCPPCommCtrlr", "HeartbeatInterval", attribute_value="120"),
            var("SampledDataCtrlr", "TxUpdatedMeasurands", attribute_value="Voltage,Bogus"),
            var("SmartChargingCtrlr", "ProfileStackLevel", attribute_value="3"),
            var("NoSuchCtrlr", "X", attribute_value="1"),
            var("TxCtrlr", "NoSuchVariable", attribute_value="1"),
        ],
    )
    assert [r["attribute_status"] for r in res.set_variable_result] == [
        "Accepted", "Rejected", "Rejected", "UnknownComponent", "UnknownVariable",
    ]  # fmt: skip
    res = csms.call(
        "GetVariables",
        get_variable_data=[
            var("OCPPCommCtrlr", "HeartbeatInterval"),
            var("SmartChargingCtrlr", "Entries", "ChargingProfiles"),
            var("SampledDataCtrlr", "TxUpdatedInterval", attribute_type="Target"),
        ],
    )  # fmt: skip
    results = res.get_variable_result
    assert results[0]["attribute_value"] == "120"
    assert results[1]["attribute_status"] == "Accepted" and results[1]["attribute_value"] == "32"
    assert results[2]["attribute_status"] == "NotSupportedAttributeType"
    mark = csms.mark()
    assert (
        csms.call("GetBaseReport", request_id=4, report_base="FullInventory").status == "Accepted"
    )
    report = csms.wait("NotifyReport", after=mark).payload
    names = {d["variable"]["name"] for d in report["reportData"]}
    assert {"HeartbeatInterval", "TxUpdatedMeasurands", "RateUnit"} <= names


def check_refusals(csms: Csms) -> None:
    """What the station cannot do gets the proper answer, never silence."""
    if csms.version == "1.6":
        with pytest.raises(OcppNotImplemented):
            csms.call(
                "ReserveNow", connector_id=1, expiry_date="2030-01-01T00:00:00Z", id_tag="T",
                reservation_id=1,
            )  # fmt: skip
        assert csms.call("UnlockConnector", connector_id=1).status == "NotSupported"
        assert csms.call("DataTransfer", vendor_id="x").status == "UnknownVendorId"
        return
    with pytest.raises(OcppNotImplemented):
        csms.call("GetLocalListVersion")
    assert csms.call("DataTransfer", vendor_id="x").status == "UnknownVendorId"
    if csms.version == "2.1":
        # the 2.1 base class answers nothing for an action without handler; we do
        with pytest.raises((OcppNotImplemented, NotSupportedError)):
            csms.call("AFRRSignal", timestamp="2030-01-01T00:00:00Z", signal=1)


@pytest.mark.parametrize("version", VERSIONS)
def test_trigger_configuration_refusals_and_reset(version: str, station: Station, rig: Any) -> None:
    csms, _ = rig(version)
    check_triggers(csms)
    check_configuration(csms)
    check_refusals(csms)
    # a reset with a transaction running: stopped, reported, then a new boot
    tx_id = remote_start(csms, station, "bpt")
    station.wait("connector.ccs", lambda p: (p["power_w"] or 0) > 10000, 30.0, "energy")
    boots = len(csms.of("BootNotification"))
    mark = csms.mark()
    if version == "1.6":
        assert csms.call("Reset", type="Soft").status == "Accepted"
        stop = ended(csms, mark)
        assert stop["reason"] == "SoftReset"
    elif version == "2.0.1":
        assert csms.call("Reset", type="Immediate").status == "Accepted"
        end = ended(csms, mark)
        assert end["triggerReason"] == "ResetCommand"
        assert end["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    else:
        # OnIdle waits for the transaction to end
        assert csms.call("Reset", type="OnIdle").status == "Scheduled"
        remote_stop(csms, tx_id)
        assert ended(csms, mark)["transactionInfo"]["stoppedReason"] == "Remote"
    station.wait_state("ccs", "finished", 20.0)
    boot = csms.wait("BootNotification", after=mark, timeout=30.0)
    assert len(csms.of("BootNotification")) == boots + 1
    if version != "1.6":
        assert boot.payload["reason"] == "RemoteReset"
    assert csms.connections >= 2  # the reset reconnected
    # a hard reset clears a connector fault in bptd (the station is at rest)
    station.call("sim", action="unplug", connector="ccs")
    station.wait_state("ccs", "idle")
    station.call("sim", action="fault", kind="estop", connector="chademo")
    station.wait_state("chademo", "fault")
    station.call("sim", action="clear_fault", kind="estop", connector="chademo")
    mark = csms.mark()
    res = csms.call("Reset", type="Hard" if version == "1.6" else "Immediate")
    assert res.status == "Accepted"
    station.wait("connector.chademo", lambda p: p["state"] != "fault", 20.0, "fault cleared")
    csms.wait("BootNotification", after=mark, timeout=30.0)
    assert all(m.valid for m in csms.messages)


def test_a_pending_boot_is_retried_and_nothing_else_is_sent_before_it_is_accepted(
    station: Station, rig: Any
) -> None:
    # the boot's interval (1 s) is the retry period
    csms, _ = rig("2.0.1", boot=False, boot_status="Pending", heartbeat_s=1)
    first = csms.wait("BootNotification", timeout=30.0)
    csms.wait("BootNotification", after=csms.messages.index(first) + 1, timeout=10.0)
    assert {m.action for m in csms.messages} == {"BootNotification"}
    csms.boot_status = "Accepted"
    csms.heartbeat_s = 300
    mark = csms.mark()
    csms.wait("StatusNotification", after=mark, timeout=10.0)
    assert csms.of("BootNotification", after=mark)
