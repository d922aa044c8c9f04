"""The station DBC: generated from the EDS, committed, and decoding what canopen encodes."""

from __future__ import annotations

import math
import pathlib
import queue
import random
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import can
import canopen
import cantools
import pytest
from canopen.objectdictionary import datatypes as dt
from canopen.pdo.base import PdoMap

from bptd.config import Config, load_config
from bptd.dbcgen import (
    SUPERVISOR,
    StationNode,
    build_database,
    dbc_identifier,
    generate_dbc,
    node_od,
    pdo_defs,
    station_nodes,
)
from bptd.profile import Profile, load_profile

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "dbc" / "bptd-station.dbc"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile()


@pytest.fixture(scope="module")
def db(config: Config, profile: Profile) -> cantools.database.can.Database:
    return build_database(config, profile)


@pytest.fixture
def channel() -> str:
    return f"dbc{uuid.uuid4().hex}"


def test_committed_dbc_matches_the_eds(config: Config, profile: Profile) -> None:
    expected = generate_dbc(config, profile)
    committed = COMMITTED.read_bytes().decode() if COMMITTED.exists() else ""
    assert committed == expected, (
        f"{COMMITTED.relative_to(ROOT)} differs from the EDS PDO mappings: run make dbc"
    )


def test_generation_is_deterministic(config: Config, profile: Profile) -> None:
    assert generate_dbc(config, profile) == generate_dbc(config, profile)


def test_committed_dbc_loads_with_cantools() -> None:
    loaded = cantools.database.load_file(str(COMMITTED))
    assert len(loaded.messages) > 0


def test_reference_station_messages(db: cantools.database.can.Database) -> None:
    dcdc1 = db.get_message_by_name("DCDC1_TPDO1")
    assert dcdc1.frame_id == 0x180 + 0x3E
    assert dcdc1.senders == ["DCDC1"]
    current = dcdc1.get_signal_by_name("dc_current_dA")
    assert current.is_signed and current.scale == pytest.approx(0.1) and current.unit == "A"
    assert current.byte_order == "little_endian"
    assert "positive = charging the vehicle" in str(current.comment)

    rpdo = db.get_message_by_name("CHIPSET_ccs_RPDO1")
    assert rpdo.frame_id == 0x200 + 0x10 and rpdo.senders == [SUPERVISOR]
    assert rpdo.get_signal_by_name("contactor_command").length == 32

    assert db.get_message_by_name("AFE2_TPDO3").frame_id == 0x380 + 0x5F
    assert db.get_message_by_name("CHIPSET_chademo_TPDO3").frame_id == 0x380 + 0x20

    hb = db.get_message_by_name("HB_DCDC1")
    assert hb.frame_id == 0x73E and hb.length == 1
    assert hb.decode(bytes([5]))["nmt_state"] == "OPERATIONAL"
    assert db.get_message_by_name("HB_SUPERVISOR").frame_id == 0x701

    emcy = db.get_message_by_name("EMCY_AFE2")
    assert emcy.frame_id == 0x80 + 0x5F and emcy.length == 8
    decoded = emcy.decode(bytes([0x10, 0x42, 0x09, 2, 0, 0, 0, 0]), decode_choices=False)
    assert decoded == {"error_code": 0x4210, "error_register": 0x09, "data": 2}


def test_every_pdo_heartbeat_and_emcy_of_every_node_is_described(
    config: Config, profile: Profile, db: cantools.database.can.Database
) -> None:
    nodes = station_nodes(config)
    expected: dict[int, str] = {0x000: "NMT"}
    for node in nodes:
        for pdo in pdo_defs(node_od(profile[node.kind].eds, node.node_id)):
            expected[pdo.cob_id] = f"{node.name}_{pdo.name}"
            message = db.get_message_by_frame_id(pdo.cob_id)
            assert message.length == pdo.dlc
            mapped = [e for e in pdo.entries if e.var is not None]
            assert [s.start for s in sorted(message.signals, key=lambda s: s.start)] == [
                e.offset for e in mapped
            ]
            sender = node.name if pdo.direction == "TPDO" else SUPERVISOR
            assert message.senders == [sender]
        expected[0x700 + node.node_id] = f"HB_{node.name}"
        expected[0x80 + node.node_id] = f"EMCY_{node.name}"
    assert {m.frame_id: m.name for m in db.messages} == expected
    assert [n.name for n in db.nodes] == [n.name for n in nodes]


def test_names_are_valid_dbc_identifiers(db: cantools.database.can.Database) -> None:
    ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
    for message in db.messages:
        assert ident.match(message.name), message.name
        assert len(message.name) <= 32, message.name
        names = [s.name for s in message.signals]
        assert len(set(names)) == len(names), message.name
        for name in names:
            assert ident.match(name) and len(name) <= 32, f"{message.name}.{name}"


def test_dbc_identifier() -> None:
    assert dbc_identifier("dc_voltage_dV") == "dc_voltage_dV"
    assert dbc_identifier("Consumer heartbeat time 1") == "Consumer_heartbeat_time_1"
    assert dbc_identifier("3rd value (x)") == "_3rd_value_x"


def test_synthesized_modules(config: Config, profile: Profile) -> None:
    db16 = build_database(config, profile, n_modules=16)
    assert db16.get_message_by_name("DCDC16_RPDO1").frame_id == 0x200 + 0x3D + 16
    assert db16.get_message_by_name("AFE16_TPDO4").frame_id == 0x480 + 0x5D + 16


# --------------------------------------------------------------------------- canopen vs cantools


def _raw_range(var: canopen.pdo.base.PdoVariable) -> tuple[int, int]:
    bits = var.length
    if var.od.data_type in dt.SIGNED_TYPES:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _raw_values(var: canopen.pdo.base.PdoVariable, rng: random.Random) -> Iterator[int]:
    lo, hi = _raw_range(var)
    yield from (lo, hi, 0)
    while True:
        yield rng.randint(lo, hi)


def _compare(
    db: cantools.database.can.Database, cob_id: int, received: PdoMap, sent: dict[str, int]
) -> None:
    message = db.get_message_by_frame_id(cob_id)
    data = bytes(received.data)
    phys = message.decode(data, decode_choices=False)
    raw = message.decode(data, decode_choices=False, scaling=False)
    by_start = {s.start: s for s in message.signals}
    for var in received.map:
        signal = by_start[var.offset]
        assert signal.name == dbc_identifier(var.od.name)
        assert var.raw == sent[var.name] == raw[signal.name]
        assert math.isclose(var.phys, phys[signal.name], rel_tol=1e-9, abs_tol=1e-9), (
            f"{message.name}.{signal.name}: canopen {var.phys} != cantools {phys[signal.name]}"
        )


def _collect(pdo_map: PdoMap, inbox: queue.Queue[tuple[int, bytes]]) -> None:
    pdo_map.add_callback(lambda m: inbox.put((m.cob_id, bytes(m.data))))


@pytest.mark.parametrize("rounds", [25])
def test_canopen_and_cantools_decode_every_pdo_alike(
    config: Config, profile: Profile, db: cantools.database.can.Database, channel: str, rounds: int
) -> None:
    """Devices send TPDOs, the master sends RPDOs, over a virtual bus; both sides agree."""
    device_net = canopen.Network(can.Bus(interface="virtual", channel=channel))
    master_net = canopen.Network(can.Bus(interface="virtual", channel=channel))
    device_net.connect()
    master_net.connect()
    rng = random.Random(20261122)
    try:
        pairs: list[tuple[StationNode, canopen.LocalNode, canopen.RemoteNode]] = []
        for node in station_nodes(config):
            eds = str(profile[node.kind].eds)
            local = canopen.LocalNode(node.node_id, eds)
            remote = canopen.RemoteNode(node.node_id, eds)
            device_net.add_node(local)
            master_net.add_node(remote)
            for pdo in (local.tpdo, local.rpdo, remote.tpdo, remote.rpdo):
                pdo.read(from_od=True)
            pairs.append((node, local, remote))

        checked = 0
        for _node, local, remote in pairs:
            # device -> master (TPDO) and master -> device (RPDO)
            for sender_maps, receiver_maps in (
                (local.tpdo, remote.tpdo),
                (remote.rpdo, local.rpdo),
            ):
                for number, tx in sender_maps.map.items():
                    if not tx.enabled or not tx.map:
                        continue
                    rx = receiver_maps.map[number]
                    inbox: queue.Queue[tuple[int, bytes]] = queue.Queue()
                    _collect(rx, inbox)
                    gens = {var.name: _raw_values(var, rng) for var in tx.map}
                    for _ in range(rounds):
                        sent = {name: next(gen) for name, gen in gens.items()}
                        for name, value in sent.items():
                            tx[name].raw = value
                        tx.transmit()
                        cob_id, data = inbox.get(timeout=2.0)
                        assert cob_id == tx.cob_id and data == bytes(tx.data)
                        _compare(db, cob_id, rx, sent)
                        checked += 1
        n_pdos = sum(len(pdo_defs(node_od(profile[n.kind].eds, n.node_id))) for n, _, _ in pairs)
        assert checked == n_pdos * rounds
    finally:
        master_net.disconnect()
        device_net.disconnect()


# --------------------------------------------------------------------------- cantools CLI


def test_cantools_decode_cli_decodes_a_logged_bus(
    db: cantools.database.can.Database, channel: str, tmp_path: pathlib.Path
) -> None:
    """Every described frame, sent on a bus and logged candump -L style, decodes by name."""
    frames: list[can.Message] = []
    for message in sorted(db.messages, key=lambda m: m.frame_id):
        values = {
            s.name: (s.minimum + s.maximum) / 2 if s.minimum is not None else 0
            for s in message.signals
        }
        data = message.encode(values, scaling=True, strict=False)
        frames.append(can.Message(arbitration_id=message.frame_id, data=data, is_extended_id=False))

    log = tmp_path / "trace.log"
    sender = can.Bus(interface="virtual", channel=channel)
    sniffer = can.Bus(interface="virtual", channel=channel)
    logger = can.Logger(str(log))
    seen = 0
    done = threading.Event()

    def count(_msg: can.Message) -> None:
        nonlocal seen
        seen += 1
        if seen == len(frames):
            done.set()

    notifier = can.Notifier(sniffer, [logger, count])
    try:
        for frame in frames:
            sender.send(frame)
        assert done.wait(5.0), f"sniffer saw {seen} of {len(frames)} frames"
    finally:
        notifier.stop()
        logger.stop()
        sniffer.shutdown()
        sender.shutdown()

    result = subprocess.run(
        [sys.executable, "-m", "cantools", "decode", "--single-line", str(COMMITTED)],
        stdin=log.open("rb"),
        capture_output=True,
        check=True,
        timeout=60,
    )
    lines = [ln for ln in result.stdout.decode().splitlines() if ln.strip()]
    assert len(lines) == len(frames), result.stdout.decode()
    for frame, line in zip(frames, lines, strict=True):
        name = db.get_message_by_frame_id(frame.arbitration_id).name
        assert f":: {name}(" in line, line
