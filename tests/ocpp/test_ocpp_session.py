"""Remote start -> energy flows -> remote stop, with meter values, for every version."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp_rig import Station
from ocpp_steps import sampled

VERSIONS = ("1.6", "2.0.1", "2.1")


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_start_energy_remote_stop(version: str, station: Station, rig: Any) -> None:
    csms, _ = rig(version, "--var", "AuthorizeRemoteTxRequests=true")
    boot = csms.wait("BootNotification")
    station.plug("ccs", "bpt", soc=0.4)
    if version == "1.6":
        csms.wait("StatusNotification", lambda p: p["status"] == "Preparing")
        assert boot.payload["chargePointVendor"] == "bptd"
        assert boot.payload["chargePointModel"] == "bptd-v2x"
        res = csms.call("RemoteStartTransaction", id_tag="TAG-1", connector_id=1)
    else:
        csms.wait("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
        assert boot.payload["chargingStation"]["vendorName"] == "bptd"
        assert boot.payload["chargingStation"]["serialNumber"] == "0000"
        res = csms.call(
            "RequestStartTransaction",
            id_token={"id_token": "TAG-1", "type": "Central"},
            remote_start_id=7,
            evse_id=1,
        )
    assert res.status == "Accepted"
    station.wait("connector.ccs", lambda p: (p["power_w"] or 0) > 9000, 30.0, "energy flowing")
    if version == "1.6":
        start = csms.wait("StartTransaction")
        csms.wait("StatusNotification", lambda p: p["status"] == "Charging")
        meter = csms.wait("MeterValues", lambda p: (sampled(p, "Power.Active.Import") or 0) > 9000)
        tx_id = meter.payload["transactionId"]
        res = csms.call("RemoteStopTransaction", transaction_id=tx_id)
    else:
        start = csms.wait("TransactionEvent", lambda p: p["eventType"] == "Started")
        tx_id = start.payload["transactionInfo"]["transactionId"]
        assert start.payload["transactionInfo"]["remoteStartId"] == 7
        csms.wait(
            "TransactionEvent",
            lambda p: p.get("transactionInfo", {}).get("chargingState") == "Charging",
        )
        meter = csms.wait(
            "TransactionEvent",
            lambda p: (
                p["triggerReason"] == "MeterValuePeriodic"
                and (sampled(p, "Power.Active.Import") or 0) > 9000
            ),
        )
        res = csms.call("RequestStopTransaction", transaction_id=tx_id)
    assert res.status == "Accepted"
    station.wait_state("ccs", "finished", 20.0)
    if version == "1.6":
        csms.wait("StatusNotification", lambda p: p["status"] == "Finishing")
    authorize = csms.wait("Authorize")  # AuthorizeRemoteTxRequests: before the transaction
    assert csms.messages.index(authorize) < csms.messages.index(start)
    record = station.call("sessions")["sessions"][-1]
    energy = record["energy_import_wh"]
    assert energy > 1.0
    if version == "1.6":
        stop = csms.wait("StopTransaction")
        assert stop.payload["transactionId"] == tx_id
        assert stop.payload["reason"] == "Remote"
        delta = stop.payload["meterStop"] - start.payload["meterStart"]
        assert abs(delta - energy) <= 1.0, (delta, energy)
        events = [m.payload for m in csms.of("MeterValues")]
    else:
        end = csms.wait("TransactionEvent", lambda p: p["eventType"] == "Ended")
        info = end.payload["transactionInfo"]
        assert info["stoppedReason"] == "Remote" and end.payload["triggerReason"] == "RemoteStop"
        begin = sampled(start.payload, "Energy.Active.Import.Register")
        final = sampled(end.payload, "Energy.Active.Import.Register")
        assert begin is not None and final is not None
        assert final - begin == pytest.approx(energy, abs=0.05)
        events = [m.payload for m in csms.of("TransactionEvent")]
        seqs = [p["seqNo"] for p in events]
        assert seqs == list(range(len(seqs))), seqs
    # every measurand in the periodic samples, the register never goes back
    periodic = [p for p in events if sampled(p, "Voltage") is not None]
    assert periodic
    names = {sv["measurand"] for mv in periodic[-1]["meterValue"] for sv in mv["sampledValue"]}
    assert names >= {
        "Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import",
        "Power.Active.Export", "Current.Import", "Current.Export", "Voltage", "SoC",
    }  # fmt: skip
    registers = [sampled(p, "Energy.Active.Import.Register") for p in events]
    registers = [r for r in registers if r is not None]
    assert registers == sorted(registers)
    assert all(m.valid for m in csms.messages), [m for m in csms.messages if not m.valid]
