"""Steps the OCPP tests share (imported as ``helpers`` from tests/ocpp)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ocpp_csms import Csms
from ocpp_rig import Station

TOLERANCE_W = 300.0


def iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def sampled(payload: dict[str, Any], measurand: str) -> float | None:
    """A measurand's value from a MeterValues / TransactionEvent / StopTransaction payload."""
    for key in ("meterValue", "transactionData"):
        for mv in payload.get(key) or []:
            for sv in mv["sampledValue"]:
                if sv.get("measurand", "Energy.Active.Import.Register") == measurand:
                    return float(sv["value"])
    return None


def near(target: float, tolerance: float = TOLERANCE_W) -> Any:
    return lambda p: p["power_w"] is not None and abs(p["power_w"] - target) <= tolerance


def remote_start(
    csms: Csms, station: Station, vehicle: str = "bpt", profile: dict[str, Any] | None = None
) -> str:
    """Plug, start remotely, wait for the transaction: its id (1.6: the CSMS's)."""
    station.plug("ccs", vehicle, soc=0.5)
    mark = csms.mark()
    if csms.version == "1.6":
        res = csms.call(
            "RemoteStartTransaction", id_tag="TAG-1", connector_id=1, charging_profile=profile
        )
        assert res.status == "Accepted"
        csms.wait("StartTransaction", after=mark)
        return str(_last_tx_16(csms))
    res = csms.call(
        "RequestStartTransaction",
        id_token={"id_token": "TAG-1", "type": "Central"},
        remote_start_id=1,
        evse_id=1,
        charging_profile=profile,
    )
    assert res.status == "Accepted", res
    started = csms.wait("TransactionEvent", lambda p: p["eventType"] == "Started", after=mark)
    return str(started.payload["transactionInfo"]["transactionId"])


def _last_tx_16(csms: Csms) -> int:
    """The transactionId the CSMS gave (1001, 1002, ... in start order)."""
    return 1000 + len(csms.of("StartTransaction"))


def remote_stop(csms: Csms, tx_id: str) -> None:
    if csms.version == "1.6":
        res = csms.call("RemoteStopTransaction", transaction_id=int(tx_id))
    else:
        res = csms.call("RequestStopTransaction", transaction_id=tx_id)
    assert res.status == "Accepted"


def ended(csms: Csms, after: int = 0, timeout: float = 20.0) -> dict[str, Any]:
    if csms.version == "1.6":
        return csms.wait("StopTransaction", after=after, timeout=timeout).payload
    return csms.wait(
        "TransactionEvent", lambda p: p["eventType"] == "Ended", after=after, timeout=timeout
    ).payload
