"""A virtual CANopen device: a ``canopen.LocalNode`` from the EDS plus the glue canopen lacks.

canopen's LocalNode answers SDO, produces its heartbeat and sends boot-up, but its RPDOs do
not reach the object dictionary and its TPDOs are never sent by themselves. This module
adds, following CiA 301:

- PDO engine: the PDO communication and mapping parameters are read from the node's own
  object dictionary (so a master can reconfigure them by SDO in PRE-OPERATIONAL);
  RPDOs are decoded into the dictionary, TPDOs are sent on their event timer and, for
  transmission type 255, on change after the inhibit time. PDOs only in OPERATIONAL.
- Heartbeat consumer (0x1016): monitoring of a producer starts with its first heartbeat;
  a timeout is a communication error (EMCY 0x8130, error behaviour 0x1029: to
  PRE-OPERATIONAL).
- RPDO deadline monitoring: an RPDO with a non-zero event timer that stops arriving is a
  communication error (EMCY 0x8250).
- NMT reset node / reset communication: the device restarts and sends its boot-up.
- Error register 0x1001 and error history 0x1003 follow the EMCYs sent.

Notifier-thread callbacks only enqueue; :meth:`SimNode.poll` runs in the station thread.
"""

from __future__ import annotations

import queue
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import canopen
import structlog
from canopen.objectdictionary import ODVariable

from bptd.emcy import Emcy
from bptd.profile import COMMAND, STATUS, DeviceProfile

log = structlog.get_logger(__name__)

NMT_COB_ID = 0x000
HEARTBEAT_BASE = 0x700
NMT_START, NMT_STOP, NMT_PREOP, NMT_RESET_NODE, NMT_RESET_COMM = 0x01, 0x02, 0x80, 0x81, 0x82
OPERATIONAL, PRE_OPERATIONAL, STOPPED = 5, 127, 4
COB_ID_INVALID = 0x80000000


@dataclass
class _Pdo:
    cob_id: int
    trans_type: int
    inhibit_s: float
    event_s: float
    entries: list[tuple[int, int, int, bool]]  # index, sub, bits, signed
    last_sent: float = -1e9
    last_data: bytes = b""
    last_rx: float | None = None


def _pack(entries: list[tuple[int, int, int, bool]], values: list[int]) -> bytes:
    acc, shift = 0, 0
    for (_, _, bits, _), raw in zip(entries, values, strict=True):
        acc |= (raw & ((1 << bits) - 1)) << shift
        shift += bits
    return acc.to_bytes((shift + 7) // 8, "little")


def _unpack(entries: list[tuple[int, int, int, bool]], data: bytes) -> list[int]:
    acc = int.from_bytes(data, "little")
    out, shift = [], 0
    for _, _, bits, signed in entries:
        raw = (acc >> shift) & ((1 << bits) - 1)
        if signed and raw & (1 << (bits - 1)):
            raw -= 1 << bits
        out.append(raw)
        shift += bits
    return out


@dataclass
class SimNode:
    """One virtual device on a network."""

    network: canopen.Network
    node_id: int
    device: DeviceProfile
    serial: int
    label: str
    on_comm_fault: Callable[[str], None] = lambda kind: None
    on_reset: Callable[[], None] = lambda: None
    heartbeat_ms: int | None = None  # this device's power-on producer period (else the EDS)
    node: canopen.LocalNode = field(init=False)
    silent: bool = False
    _inbox: queue.SimpleQueue[tuple[Any, ...]] = field(default_factory=queue.SimpleQueue)
    _rpdos: dict[int, _Pdo] = field(default_factory=dict)
    _tpdos: list[_Pdo] = field(default_factory=list)
    _consumers: dict[int, list[float | None]] = field(default_factory=dict)  # id -> [timeout, last]
    _status_raw: dict[tuple[int, int], int] = field(default_factory=dict)
    _config_dirty: bool = True
    _errors: list[int] = field(default_factory=list)
    _hb_subscribed: set[int] = field(default_factory=set)
    rpdo_seen: bool = False  # an RPDO arrived since the last boot

    def __post_init__(self) -> None:
        od = self.device.object_dictionary(self.node_id)
        self.node = canopen.LocalNode(self.node_id, od)
        self._init_store()
        self.network.add_node(self.node)
        self.node.add_write_callback(self._on_sdo_write)
        self.node.add_read_callback(self._on_sdo_read)
        self.network.subscribe(NMT_COB_ID, self._on_nmt)
        self._status_refs = [r for r in self.device.objects.values() if r.role == STATUS]
        self._command_refs = [r for r in self.device.objects.values() if r.role == COMMAND]
        self._vars: dict[tuple[int, int], ODVariable] = {}

    def _init_store(self) -> None:
        self.node.data_store.clear()
        self.node.data_store[0x1018] = {4: struct.pack("<I", self.serial)}
        if self.heartbeat_ms is not None:
            self.node.data_store[0x1017] = {0: struct.pack("<H", self.heartbeat_ms)}

    # ------------------------------------------------------------------ boot
    def boot(self) -> None:
        """Power on: boot-up message, then PRE-OPERATIONAL with the heartbeat from 0x1017."""
        self.rpdo_seen = False
        self.node.nmt.state = "RESET"
        self.node.nmt.state = "PRE-OPERATIONAL"
        self._config_dirty = True
        log.debug("sim_node_booted", node=self.label, node_id=f"0x{self.node_id:02X}")

    def set_silent(self, silent: bool) -> None:
        """Fall silent (a dead device) or come back with a fresh boot."""
        if silent == self.silent:
            return
        self.silent = silent
        sdo = self.node.sdo
        if silent:
            self.node.nmt.stop_heartbeat()
            self.network.unsubscribe(sdo.rx_cobid, sdo.on_request)
        else:
            self.network.subscribe(sdo.rx_cobid, sdo.on_request)
            self._restart(NMT_RESET_NODE)

    def close(self) -> None:
        self.node.nmt.stop_heartbeat()

    # ------------------------------------------------------------------ notifier thread
    def _on_nmt(self, can_id: int, data: bytearray, timestamp: float) -> None:
        if len(data) >= 2 and data[1] in (0, self.node_id):
            self._inbox.put(("nmt", data[0]))

    def _on_pdo(self, can_id: int, data: bytearray, timestamp: float) -> None:
        self._inbox.put(("rpdo", can_id, bytes(data)))

    def _on_heartbeat(self, can_id: int, data: bytearray, timestamp: float) -> None:
        self._inbox.put(("hb", can_id - HEARTBEAT_BASE))

    def _on_sdo_write(self, index: int, subindex: int, od: ODVariable, data: bytes) -> None:
        if 0x1000 <= index < 0x2000:
            self._config_dirty = True

    def _on_sdo_read(self, index: int, subindex: int, od: ODVariable) -> int | None:
        return self._status_raw.get((index, subindex))

    # ------------------------------------------------------------------ values
    def _var(self, index: int, sub: int) -> ODVariable:
        key = (index, sub)
        var = self._vars.get(key)
        if var is None:
            obj = self.node.object_dictionary[index]
            var = obj if isinstance(obj, ODVariable) else obj[sub]
            self._vars[key] = var
        return var

    def raw(self, index: int, sub: int) -> int:
        stored = self.node.data_store.get(index, {}).get(sub)
        var = self._var(index, sub)
        if stored is not None:
            return int(var.decode_raw(stored))
        value = var.value if var.value is not None else var.default
        return int(value or 0)

    def _store(self, index: int, sub: int, raw: int) -> None:
        self.node.data_store.setdefault(index, {})[sub] = self._var(index, sub).encode_raw(raw)

    def commands(self) -> dict[str, float]:
        """The command objects in SI units."""
        return {r.name: r.to_si(self.raw(r.index, r.subindex)) for r in self._command_refs}

    def param(self, name: str) -> float:
        r = self.device[name]
        return r.to_si(self.raw(r.index, r.subindex))

    def set_status(self, values: dict[str, float]) -> None:
        """Status objects from SI values (clamped to the object's range)."""
        for r in self._status_refs:
            if r.name in values:
                raw = round(values[r.name] / r.scale)
                self._status_raw[(r.index, r.subindex)] = max(r.raw_min, min(r.raw_max, raw))

    @property
    def operational(self) -> bool:
        return not self.silent and self.node.nmt.state == "OPERATIONAL"

    # ------------------------------------------------------------------ station thread
    def poll(self, now: float) -> None:
        """Drain the inbox (NMT, RPDOs, heartbeats) and supervise the consumers and deadlines."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if self.silent:
                continue
            kind = item[0]
            if kind == "nmt":
                self._nmt(item[1])
            elif kind == "rpdo":
                self._rpdo(item[1], item[2], now)
            elif kind == "hb":
                entry = self._consumers.get(item[1])
                if entry is not None:
                    entry[1] = now
        if self.silent:
            return
        if self._config_dirty:
            self._read_config()
        self._supervise(now)

    def transmit(self, now: float) -> None:
        """Send the TPDOs that are due (OPERATIONAL only)."""
        if self.operational:
            self._send_tpdos(now)

    def send_emcy(self, e: Emcy) -> None:
        if self.silent:
            return
        if e.code == 0:
            self._errors.clear()
        else:
            self._errors.insert(
                0, e.code | (int.from_bytes(e.data[:2].ljust(2, b"\0"), "little") << 16)
            )
            del self._errors[8:]
        self._store(0x1001, 0, e.register if e.code else 0)
        self.node.data_store.setdefault(0x1003, {})[0] = bytes([len(self._errors)])
        for i, v in enumerate(self._errors, start=1):
            self.node.data_store[0x1003][i] = struct.pack("<I", v)
        self.node.emcy.send(e.code, e.register if e.code else 0, e.data[:5])

    def _nmt(self, cmd: int) -> None:
        if cmd in (NMT_RESET_NODE, NMT_RESET_COMM):
            self._restart(cmd)
        elif cmd == NMT_START:
            for p in self._rpdos.values():
                p.last_rx = None

    def _restart(self, cmd: int) -> None:
        if cmd == NMT_RESET_NODE:
            self._init_store()
            self.on_reset()
        else:
            for index in [i for i in self.node.data_store if 0x1000 <= i < 0x2000 and i != 0x1018]:
                del self.node.data_store[index]
        self._errors.clear()
        for entry in self._consumers.values():
            entry[1] = None
        self.boot()

    def _rpdo(self, cob_id: int, data: bytes, now: float) -> None:
        pdo = self._rpdos.get(cob_id)
        if pdo is None or not self.operational:
            return
        need = (sum(e[2] for e in pdo.entries) + 7) // 8
        if len(data) < need:
            log.warning(
                "sim_rpdo_too_short", node=self.label, cob_id=f"0x{cob_id:03X}", dlc=len(data)
            )
            return
        for (index, sub, _, _), raw in zip(pdo.entries, _unpack(pdo.entries, data), strict=True):
            self._store(index, sub, raw)
        pdo.last_rx = now
        self.rpdo_seen = True

    def _supervise(self, now: float) -> None:
        for producer, entry in self._consumers.items():
            timeout, last = entry
            if last is not None and timeout and now - last > timeout:
                entry[1] = None  # monitoring restarts with the next heartbeat
                self._comm_error("heartbeat", f"0x{producer:02X}")
        if self.operational:
            for pdo in self._rpdos.values():
                if pdo.event_s and pdo.last_rx is not None and now - pdo.last_rx > pdo.event_s:
                    pdo.last_rx = None
                    self._comm_error("rpdo_timeout", f"0x{pdo.cob_id:03X}")

    def _comm_error(self, kind: str, source: str) -> None:
        log.info("sim_comm_error", node=self.label, kind=kind, source=source)
        self.on_comm_fault(kind)
        if self.raw(0x1029, 1) == 0 and self.node.nmt.state == "OPERATIONAL":
            self.node.nmt.state = "PRE-OPERATIONAL"

    def _send_tpdos(self, now: float) -> None:
        for pdo in self._tpdos:
            values = [self._status_raw.get((i, s), self.raw(i, s)) for i, s, _, _ in pdo.entries]
            data = _pack(pdo.entries, values)
            due = pdo.event_s > 0 and now - pdo.last_sent >= pdo.event_s
            changed = (
                pdo.trans_type == 255
                and data != pdo.last_data
                and now - pdo.last_sent >= pdo.inhibit_s
            )
            if due or changed:
                self.network.send_message(pdo.cob_id, data)
                pdo.last_sent = now
                pdo.last_data = data

    def _read_config(self) -> None:
        self._config_dirty = False
        for cob_id in list(self._rpdos):
            self.network.unsubscribe(cob_id, self._on_pdo)
        self._rpdos.clear()
        self._tpdos.clear()
        od = self.node.object_dictionary
        for comm, mapping, target in ((0x1400, 0x1600, "rx"), (0x1800, 0x1A00, "tx")):
            for n in range(512):
                if comm + n not in od:
                    break
                cob = self.raw(comm + n, 1)
                if cob & COB_ID_INVALID:
                    continue
                entries = []
                for sub in range(1, self.raw(mapping + n, 0) + 1):
                    value = self.raw(mapping + n, sub)
                    index, s, bits = value >> 16, (value >> 8) & 0xFF, value & 0xFF
                    if not index or not bits:
                        continue
                    var = self._var(index, s)
                    entries.append((index, s, bits, var.data_type in (0x2, 0x3, 0x4)))
                if not entries:
                    continue
                sub5 = self.raw(comm + n, 5) if 5 in od[comm + n] else 0
                sub3 = self.raw(comm + n, 3) if 3 in od[comm + n] else 0
                pdo = _Pdo(
                    cob_id=cob & 0x7FF,
                    trans_type=self.raw(comm + n, 2),
                    inhibit_s=sub3 / 10000.0,
                    event_s=sub5 / 1000.0,
                    entries=entries,
                )
                if target == "rx":
                    self._rpdos[pdo.cob_id] = pdo
                    self.network.subscribe(pdo.cob_id, self._on_pdo)
                else:
                    self._tpdos.append(pdo)
        wanted: dict[int, list[float | None]] = {}
        if 0x1016 in od:
            for sub in range(1, self.raw(0x1016, 0) + 1):
                value = self.raw(0x1016, sub)
                producer, ms = (value >> 16) & 0x7F, value & 0xFFFF
                if producer and ms:
                    old = self._consumers.get(producer)
                    wanted[producer] = [ms / 1000.0, old[1] if old else None]
        for producer in wanted:
            if producer not in self._hb_subscribed:
                self.network.subscribe(HEARTBEAT_BASE + producer, self._on_heartbeat)
                self._hb_subscribed.add(producer)
        self._consumers = wanted
