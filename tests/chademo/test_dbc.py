"""dbc/chademo.dbc: every frame round-trips, and the bytes are where the protocol puts them."""

from __future__ import annotations

import random
import re

import cantools
import pytest

from bptd.chademo import frames as fr
from bptd.paths import DBC_DIR

VEHICLE = {
    0x100: "EV_ChargeLimits",
    0x101: "EV_ChargeTime",
    0x102: "EV_Status",
    0x110: "EV_Extended",
    0x200: "EV_DischargeLimits",
    0x201: "EV_DischargeEstimate",
}
CHARGER = {0x108: "EVSE_Capability", 0x109: "EVSE_Status", 0x118: "EVSE_Extended",
           0x208: "EVSE_DischargeCapability", 0x209: "EVSE_DischargeEstimate"}  # fmt: skip


@pytest.fixture(scope="module")
def db() -> cantools.database.can.Database:
    return fr.database()


def test_shipped_in_the_package_and_loaded_with_cantools(
    db: cantools.database.can.Database,
) -> None:
    assert fr.DBC_PATH == DBC_DIR / "chademo.dbc" and fr.DBC_PATH.is_file()
    assert {m.frame_id: m.name for m in db.messages} == {**VEHICLE, **CHARGER}
    assert set(VEHICLE) == fr.VEHICLE_IDS
    assert set(CHARGER) == fr.CHARGER_IDS
    ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
    for m in db.messages:
        assert m.length == 8 and not m.is_extended_frame
        assert m.cycle_time == 100, m.name
        assert m.senders == (["EV"] if m.frame_id in VEHICLE else ["EVSE"])
        assert m.comment, m.name
        for s in m.signals:
            assert ident.match(s.name) and len(s.name) <= 32
            assert s.byte_order == "little_endian" and not s.is_signed
            assert s.comment, f"{m.name}.{s.name}"


def _value(signal: cantools.database.can.Signal, rng: random.Random) -> float:
    raw = rng.randint(0, (1 << signal.length) - 1)
    return raw * signal.scale + signal.offset


def test_every_message_round_trips(db: cantools.database.can.Database) -> None:
    rng = random.Random(11)
    for m in db.messages:
        for _ in range(200):
            values = {s.name: _value(s, rng) for s in m.signals}
            data = m.encode(values, strict=True)
            assert m.decode(data, decode_choices=False) == pytest.approx(values), m.name
            # and through our own helpers, as both sides use them
            assert fr.decode(m.frame_id, fr.encode(m.frame_id, values).data) == pytest.approx(
                values
            )


def test_vehicle_frames_byte_by_byte() -> None:
    # 0x100: 300 V minimum, 435 V maximum (little-endian), 100 % charged-rate constant
    limits = fr.decode(0x100, bytes([0, 0, 0x2C, 0x01, 0xB3, 0x01, 0x64, 0]))
    assert limits == {"MinChargeCurrent": 0, "MinBatteryVoltage": 300, "MaxBatteryVoltage": 435,
                      "ChargedRateConstant": 100}  # fmt: skip
    # 0x101: 0xFF = use minutes (90 min), estimate 60 min, 40.0 kWh
    time = fr.decode(0x101, bytes([0, 0xFF, 90, 60, 0, 0x90, 0x01, 0]))
    assert time == {
        "MaxChargeTime10s": 2550,
        "MaxChargeTime1min": 5400,
        "EstChargeTime1min": 3600,
        "RatedBatteryCapacity": pytest.approx(40.0),
    }
    # 0x102: protocol 2, target 410 V, 125 A, no fault, enabled + V2H, 60 %
    status = fr.decode(0x102, bytes([2, 0x9A, 0x01, 125, 0, 0x81, 60, 0]))
    assert status is not None
    assert status["TargetBatteryVoltage"] == 410 and status["ChargeCurrentRequest"] == 125
    assert status["StatusChargingEnabled"] == 1 and status["StatusDischargeCompatible"] == 1
    assert status["StatusContactorOpen"] == 0 and status["ChargedRate"] == 60
    # fault flags in byte 4: bit 0 overvoltage ... bit 4 voltage deviation (not reversed)
    names = list(fr.EV_FAULTS)
    for bit, name in enumerate(names):
        decoded = fr.decode(0x102, bytes([2, 0, 0, 0, 1 << bit, 0, 0, 0]))
        assert decoded is not None
        assert [n for n in names if decoded[n]] == [name]
    flags = ["StatusChargingEnabled", "StatusShiftNotInPark", "StatusSystemFault",
             "StatusContactorOpen", "StatusNormalStopRequest", None, None,
             "StatusDischargeCompatible"]  # fmt: skip
    for bit, name in enumerate(flags):
        decoded = fr.decode(0x102, bytes([0, 0, 0, 0, 0, 1 << bit, 0, 0]))
        assert decoded is not None
        set_flags = [k for k in decoded if k.startswith("Status") and decoded[k]]
        assert set_flags == ([name] if name else [])
    # 0x200: 0xFF - A: raw 0xE2 = 29 A; 0xFF = 0 A (the initial value)
    dis = fr.decode(0x200, bytes([0xE2, 0, 0, 0, 0x2C, 0x01, 20, 90]))
    assert dis == {
        "MaxDischargeCurrent": 29,
        "MinDischargeVoltage": 300,
        "MinBatteryDischargeLevel": 20,
        "MaxRemainingCapacityForCharging": 90,
    }
    assert fr.decode(0x200, bytes([0xFF] + [0] * 7))["MaxDischargeCurrent"] == 0  # type: ignore[index]


def test_charger_frames_byte_by_byte() -> None:
    # the idle 0x208 of a V2H unit: 0 A, 500 V, 15 A, 250 V
    msg = fr.encode(
        0x208,
        {
            "PresentDischargeCurrent": 0,
            "AvailableInputVoltage": 500,
            "AvailableInputCurrent": 15,
            "LowerThresholdVoltage": 250,
        },
    )
    assert bytes(msg.data) == bytes.fromhex("FFF401F00000FA00")
    msg = fr.encode(
        0x108,
        {
            "WeldingDetectionSupport": 1,
            "AvailableOutputVoltage": 500,
            "AvailableOutputCurrent": 60,
            "ThresholdVoltage": 435,
        },
    )
    assert bytes(msg.data) == bytes([1, 0xF4, 0x01, 60, 0xB3, 0x01, 0, 0])
    msg = fr.encode(
        0x109,
        {
            "ProtocolNumber": 2,
            "PresentOutputVoltage": 378,
            "PresentOutputCurrent": 13,
            "DischargeCompatible": 1,
            "StatusCharging": 1,
            "StatusConnectorLocked": 1,
            "RemainingChargeTime10s": 2550,
            "RemainingChargeTime1min": 5400,
        },
    )
    assert bytes(msg.data) == bytes([2, 0x7A, 0x01, 13, 1, 0x05, 0xFF, 90])
    # each status flag of byte 5 where the protocol puts it
    for bit, name in enumerate(["StatusCharging", "StatusMalfunction", "StatusConnectorLocked",
                                "StatusBatteryIncompatible", "StatusSystemMalfunction",
                                "StatusStopControl"]):  # fmt: skip
        assert fr.encode(0x109, {name: 1}).data[5] == 1 << bit, name


def test_encode_clamps_and_defaults() -> None:
    # out of range values are clamped into the signal; missing ones are physical 0
    msg = fr.encode(0x109, {"PresentOutputCurrent": 300.0, "PresentOutputVoltage": -5.0})
    assert msg.data[3] == 255 and msg.data[1:3] == bytes(2)
    assert fr.encode(0x208, {}).data[0] == 0xFF  # 0 A, not 255 A
    assert fr.encode(0x208, {"PresentDischargeCurrent": float("nan")}).data[0] == 0xFF
    assert msg.arbitration_id == 0x109 and not msg.is_extended_id
    # unknown identifiers and short frames do not decode
    assert fr.decode(0x123, bytes(8)) is None
    assert fr.decode(0x102, bytes(4)) is None
