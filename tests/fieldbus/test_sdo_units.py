"""SDO access with readable aborts, and the pure decoders (EMCY, error frames, abort codes)."""

from __future__ import annotations

import concurrent.futures

import pytest
from tests.fieldbus.helpers import Loop

from bptd import emcy
from bptd.fieldbus import SdoAbortError
from bptd.fieldbus.emcy import decode, register_text
from bptd.fieldbus.errors import abort_text
from bptd.fieldbus.supervision import error_frame_text, is_bus_off


def test_sdo_read_param_in_si_units(running: Loop) -> None:
    fb = running.fb
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # from worker threads, in parallel
        futs = [pool.submit(fb.sdo_read, "dcdc.1", "max_charge_current_a") for _ in range(8)]
        assert [f.result() for f in futs] == [30.0] * 8
    assert fb.sdo_read("afe.2", "phases") == 3


def test_sdo_abort_is_readable(running: Loop) -> None:
    with pytest.raises(SdoAbortError) as info:
        running.fb.sdo_write("dcdc.1", "max_charge_current_a", 10.0)
    err = info.value
    assert err.code == 0x06010002
    assert (err.key, err.index, err.subindex) == ("dcdc.1", 0x2200, 0x01)
    assert "0x2200:01 write refused: SDO abort 0x06010002" in str(err)
    assert "read-only" in str(err)


def test_abort_text_keeps_unknown_codes() -> None:
    assert abort_text(0x06020000).startswith("0x06020000 (object does not exist")
    assert abort_text(0x12345678) == "0x12345678 (device-specific abort code)"


def test_emcy_decode_full_and_short_frames() -> None:
    full = decode("dcdc.1", 0x3E, bytes([0x10, 0x42, 0x09, 2, 0, 0, 0, 0]), 1.0)
    assert (full.code, full.register, full.detail, full.short) == (0x4210, 0x09, "trip", False)
    assert full.data == bytes([2, 0, 0, 0, 0])
    assert full.register_text == "generic, temperature"
    reset = decode("dcdc.1", 0x3E, bytes(8), 1.0)
    assert reset.is_reset and reset.text == "error reset"
    short = decode("afe.1", 0x5E, bytes([0x30, 0x81]), 1.0)
    assert (short.code, short.short, short.data) == (0x8130, True, b"")
    assert short.text == emcy.describe(0x8130)
    assert decode("x", 1, bytes([0x01, 0x62, 0]), 0).text == "device software"
    assert register_text(0) == "none"


def test_error_frame_text() -> None:
    assert is_bus_off(0x40) and error_frame_text(0x40, bytes(8)) == "bus-off"
    passive = error_frame_text(0x04, bytes([0, 0x20, 0, 0, 0, 0, 0, 0]))
    assert passive == "controller problem, error passive"
    assert not is_bus_off(0x04)
