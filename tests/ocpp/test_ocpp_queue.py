"""The transaction message queue on disk (bptd.ocpp.queue) and the device model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bptd.ocpp import queue as q
from bptd.ocpp.devmodel import DeviceModel
from bptd.ocpp.queue import OfflineQueue


def test_pending_messages_survive_a_restart_in_order_with_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "queue.jsonl"
    first = OfflineQueue(path)
    items = [first.put("MeterValues", {"n": n}) for n in range(5)]
    first.ack(items[0].seq)
    first.ack(items[2].seq)
    first.close()
    again = OfflineQueue(path)
    assert [(i.seq, i.msg_id, i.payload) for i in again.pending()] == [
        (i.seq, i.msg_id, i.payload) for i in (items[1], items[3], items[4])
    ]
    assert again.put("MeterValues", {"n": 5}).seq == 6  # numbers never repeat
    again.close()


def test_a_torn_last_line_is_dropped_and_the_file_stays_appendable(tmp_path: Path) -> None:
    path = tmp_path / "queue.jsonl"
    qu = OfflineQueue(path)
    qu.put("StartTransaction", {"a": 1})
    qu.put("StopTransaction", {"a": 2})
    qu.close()
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # a crash in the middle of the last write
    again = OfflineQueue(path)
    assert [i.action for i in again.pending()] == ["StartTransaction"]
    again.put("StopTransaction", {"a": 3})
    again.close()
    lines = path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    # a whole record whose newline was lost is kept, and the next one starts a new line
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    third = OfflineQueue(path)
    assert [i.payload for i in third.pending()] == [{"a": 1}, {"a": 3}]
    third.put("MeterValues", {"a": 4})
    third.close()
    assert len(OfflineQueue(path).pending()) == 3


def test_csms_transaction_ids_and_numbering_survive_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(q, "COMPACT_BYTES", 200)
    path = tmp_path / "queue.jsonl"
    qu = OfflineQueue(path)
    start = qu.put("StartTransaction", {"x": "y" * 100}, {"tx": "L1"})
    qu.ack(start.seq, ("L1", 1234))
    for _ in range(3):
        qu.ack(qu.put("MeterValues", {"x": "y" * 100}).seq)
    assert path.stat().st_size < 200  # compacted: nothing pending
    assert qu.tx_ids == {"L1": 1234}
    qu.close()
    again = OfflineQueue(path)
    assert again.tx_ids == {"L1": 1234} and not again.pending()
    assert again.put("StopTransaction", {}).seq == 5
    again.close()


def test_next_waits_for_a_message_and_drained_for_the_acks(tmp_path: Path) -> None:
    async def run() -> None:
        qu = OfflineQueue(tmp_path / "queue.jsonl")
        waiter = asyncio.ensure_future(qu.next())
        await asyncio.sleep(0)
        assert not waiter.done()
        item = qu.put("MeterValues", {})
        assert await asyncio.wait_for(waiter, 1.0) is item
        assert not await qu.drained(0.01)
        asyncio.get_running_loop().call_soon(qu.ack, item.seq)
        assert await qu.drained(1.0)
        qu.close()

    asyncio.run(run())


def test_device_model_names_per_version_defaults_and_checks() -> None:
    stored: dict[str, object] = {}
    dm = DeviceModel("1.6", stored, {"MeterValueSampleInterval": "15"}, {"number_of_connectors": 2})
    assert dm.get("meter_interval") == 15
    assert dm.find16("ChargingScheduleAllowedChargingRateUnit") is not None
    assert dm.text("rate_units") == "Current,Power"
    assert dm.set("meter_interval", "5") is None and stored["meter_interval"] == 5
    assert dm.set("meter_interval", "-1") is not None
    assert dm.set("measurands", "Voltage,Temperature") is not None  # not measured by bptd
    assert dm.set("number_of_connectors", "4") is not None  # read-only
    assert dm.set("authorize_remote", "TRUE") is None and dm.get("authorize_remote") is True
    v2 = DeviceModel("2.1", {})
    assert v2.text("rate_units") == "A,W"
    var = v2.find2x("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent")
    assert var is not None and var.key == "message_attempts"
    assert v2.find("SampledDataCtrlr.TxUpdatedInterval") is not None
    assert {v.key for v in v2.visible()} >= {"heartbeat_interval", "tx_start_point"}
    with pytest.raises(ValueError):
        DeviceModel("2.0.1", {}, {"NoSuchThing": "1"})
