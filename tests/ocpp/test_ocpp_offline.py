"""The CSMS goes away in the middle of a transaction (and bptd-ocpp is killed with -9 while
it is away): every transaction message reaches the CSMS after the reconnect, in order."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from ocpp_rig import Station
from ocpp_steps import remote_start, sampled

VERSIONS = ("1.6", "2.0.1", "2.1")
TX_ACTIONS = {"StartTransaction", "MeterValues", "StopTransaction", "TransactionEvent"}


def queued(state_dir: Path) -> list[dict[str, Any]]:
    """The messages bptd-ocpp put in its queue file, in order."""
    path = state_dir / "queue.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line being written
        if rec.get("op") == "put":
            out.append(rec)
    return out


def wait_queued(state_dir: Path, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        q = queued(state_dir)
        if predicate(q):
            return q
        assert time.monotonic() < deadline, f"queue never satisfied the condition: {len(q)}"
        time.sleep(0.05)


def is_end(rec: dict[str, Any]) -> bool:
    return rec["action"] == "StopTransaction" or rec["payload"].get("event_type") == "Ended"


@pytest.mark.parametrize("version", VERSIONS)
def test_csms_down_mid_transaction_everything_arrives_in_order(
    version: str, station: Station, rig: Any
) -> None:
    csms, fe = rig(version)
    remote_start(csms, station, "bpt")
    station.wait("connector.ccs", lambda p: (p["power_w"] or 0) > 10000, 30.0, "energy")
    periodic = "MeterValues" if version == "1.6" else "TransactionEvent"
    csms.wait(periodic, lambda p: sampled(p, "Power.Active.Import") is not None)
    # the CSMS goes away; meter values pile up on disk
    csms.stop_server()
    n0 = len(queued(fe.state_dir))
    wait_queued(fe.state_dir, lambda q: len(q) >= n0 + 3)
    # the frontend dies without a word and comes back, still offline: it carries on
    fe.kill()
    n1 = len(queued(fe.state_dir))
    fe.start()
    wait_queued(fe.state_dir, lambda q: len(q) >= n1 + 2)
    # the session ends at the station while the CSMS is away
    station.call("stop", connector="ccs")
    station.wait_state("ccs", "finished", 20.0)
    expected = wait_queued(fe.state_dir, lambda q: any(is_end(r) for r in q))
    assert len(expected) >= n0 + 6
    # the CSMS is back on the same port: every message arrives, in the order it was queued
    csms.start_server()
    end_action = "StopTransaction" if version == "1.6" else "TransactionEvent"
    csms.wait(end_action, lambda p: "meterStop" in p or p.get("eventType") == "Ended", timeout=30)
    received = [m for m in csms.messages if m.action in TX_ACTIONS]
    first_seen: dict[str, Any] = {}
    for m in received:
        if m.unique_id in first_seen:  # the retry of a message whose answer was lost
            assert m.payload == first_seen[m.unique_id].payload
        else:
            first_seen[m.unique_id] = m
    assert [m.unique_id for m in first_seen.values()] == [r["id"] for r in expected]
    assert len(received) - len(first_seen) <= 1, "more than the one message in flight repeated"
    assert all(m.valid for m in csms.messages)
    payloads = [m.payload for m in first_seen.values()]
    if version == "1.6":
        tx_ids = {p["transactionId"] for p in payloads if "transactionId" in p}
        assert len(tx_ids) == 1, tx_ids
        assert [m.action for m in first_seen.values()][-1] == "StopTransaction"
        assert payloads[-1]["reason"] == "Local"
        stamps = [p["meterValue"][0]["timestamp"] for p in payloads if "meterValue" in p]
    else:
        assert [p["seqNo"] for p in payloads] == list(range(len(payloads)))
        assert payloads[0]["eventType"] == "Started" and payloads[-1]["eventType"] == "Ended"
        assert payloads[-1]["transactionInfo"]["stoppedReason"] == "Local"
        assert payloads[-1].get("offline") is True
        assert sum(1 for p in payloads if p.get("offline")) >= 6
        stamps = [p["timestamp"] for p in payloads]
    assert stamps == sorted(stamps)
    registers = [sampled(p, "Energy.Active.Import.Register") for p in payloads]
    registers = [r for r in registers if r is not None]
    assert registers == sorted(registers)
    record = station.call("sessions")["sessions"][-1]
    if version != "1.6":
        begin = sampled(payloads[0], "Energy.Active.Import.Register")
        assert registers[-1] - begin == pytest.approx(record["energy_import_wh"], abs=0.05)
