"""DBC of a station, generated from the EDS PDO mappings (the EDS is the single source of truth).

One message per enabled TPDO and RPDO of every node of the station, at its real COB-ID
(``$NODEID`` resolved), plus the heartbeat (0x700 + id) and EMCY (0x80 + id) of every node.
The DBC is for decoding logs (``cantools decode``, SavvyCAN, Vector tools); the daemon itself
never reads it. ``make dbc`` writes the reference station's file, and a test fails when the
committed file drifts from what this module produces.

Names:

- nodes: ``SUPERVISOR``, ``CHIPSET_<connector>``, ``DCDC<n>``, ``AFE<n>``;
- messages: ``<node>_TPDO<k>`` / ``<node>_RPDO<k>`` (sender = the producing node, so the
  supervisor sends every RPDO), ``HB_<node>``, ``EMCY_<node>``;
- signals: the EDS ParameterName of the mapped object, made a valid DBC identifier.

Signals are little-endian, signed when the CANopen data type is, scaled by the profile's scale
(the EDS ``Factor`` key unless the profile overrides it), with the EDS ``Unit`` and the EDS
``Description`` plus the object address as comment.
"""

from __future__ import annotations

import pathlib
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import canopen
from canopen.objectdictionary import ObjectDictionary, ODArray, ODRecord, ODVariable
from canopen.objectdictionary import datatypes as dt
from cantools.database.can import Database, Message, Node, Signal
from cantools.database.conversion import BaseConversion

from bptd import emcy
from bptd.config import Config, ModuleConfig, load_config
from bptd.profile import ObjectRef, Profile, load_profile

SUPERVISOR = "SUPERVISOR"

#: NMT states in the heartbeat byte (CiA 301).
NMT_STATES: dict[int, str] = {
    0x00: "BOOT_UP",
    0x04: "STOPPED",
    0x05: "OPERATIONAL",
    0x7F: "PRE_OPERATIONAL",
}

_KIND_TEXT = {
    "supervisor": "supervisor",
    "chipset": "chipset",
    "dcdc": "DC/DC stage",
    "afe": "AFE stage",
}

_COB_INVALID = 1 << 31
_COB_EXTENDED = 1 << 29


# --------------------------------------------------------------------------- station nodes


@dataclass(frozen=True)
class StationNode:
    """One CANopen node of a station."""

    name: str  # DBC node name
    kind: str  # profile device kind
    node_id: int
    heartbeat_ms: int  # producer heartbeat period the supervisor configures
    label: str  # human text: "DC/DC stage of module 1"


def synthetic_modules(n_modules: int, heartbeat_ms: int = 100) -> tuple[ModuleConfig, ...]:
    """Modules 1..n at the reference node-ids (DC/DC 0x3D + n, AFE 0x5D + n)."""
    return tuple(
        ModuleConfig(n=n, dcdc_node_id=0x3D + n, afe_node_id=0x5D + n, heartbeat_ms=heartbeat_ms)
        for n in range(1, n_modules + 1)
    )


def station_nodes(config: Config, n_modules: int | None = None) -> list[StationNode]:
    """Every node of the station in a stable order: supervisor, chipsets, modules.

    ``n_modules`` replaces the configured modules by modules 1..n at the reference node-ids
    (with the heartbeat period of the first configured module).
    """
    modules = config.modules
    if n_modules is not None:
        hb = modules[0].heartbeat_ms if modules else ModuleConfig(0, 0, 0).heartbeat_ms
        modules = synthetic_modules(n_modules, hb)
    nodes = [
        StationNode(
            SUPERVISOR,
            "supervisor",
            config.can.supervisor_node_id,
            config.can.heartbeat_ms,
            "supervisor",
        )
    ]
    for c in config.connectors:
        nodes.append(
            StationNode(
                f"CHIPSET_{c.name}",
                "chipset",
                c.chipset_node_id,
                c.heartbeat_ms,
                f"chipset of connector {c.name}" + (f" ({c.kind})" if c.kind != c.name else ""),
            )
        )
    for m in sorted(modules, key=lambda m: m.n):
        nodes.append(
            StationNode(
                f"DCDC{m.n}",
                "dcdc",
                m.dcdc_node_id,
                m.heartbeat_ms,
                f"DC/DC stage of module {m.n}",
            )
        )
        nodes.append(
            StationNode(
                f"AFE{m.n}", "afe", m.afe_node_id, m.heartbeat_ms, f"AFE stage of module {m.n}"
            )
        )
    return nodes


# --------------------------------------------------------------------------- PDO sets


@dataclass(frozen=True)
class PdoEntry:
    """One mapped object of a PDO; ``var`` is None for a dummy (gap) entry."""

    index: int
    subindex: int
    offset: int  # bit offset in the frame
    length: int  # bits
    var: ODVariable | None


@dataclass(frozen=True)
class PdoDef:
    """A PDO as the EDS defines it by default."""

    direction: str  # "TPDO" (device -> supervisor) or "RPDO" (supervisor -> device)
    number: int  # 1-based
    cob_id: int
    extended: bool
    trans_type: int
    inhibit_100us: int
    event_timer_ms: int  # TPDO: period; RPDO: the device's deadline (0 = none)
    entries: tuple[PdoEntry, ...]

    @property
    def bits(self) -> int:
        return sum(e.length for e in self.entries)

    @property
    def dlc(self) -> int:
        return (self.bits + 7) // 8

    @property
    def name(self) -> str:
        return f"{self.direction}{self.number}"


def _sub(rec: ODRecord | ODArray, sub: int) -> int | None:
    if sub not in rec:
        return None
    value = rec[sub].default
    return int(value) if value is not None else None


def pdo_defs(od: ObjectDictionary) -> list[PdoDef]:
    """The enabled PDOs of an object dictionary (RPDOs first), from their default values."""
    out: list[PdoDef] = []
    for direction, comm_base, map_base in (("RPDO", 0x1400, 0x1600), ("TPDO", 0x1800, 0x1A00)):
        for n in range(512):
            comm_idx, map_idx = comm_base + n, map_base + n
            if comm_idx not in od or map_idx not in od:
                continue
            comm, mapping = od[comm_idx], od[map_idx]
            cob = _sub(comm, 1)
            if cob is None or cob & _COB_INVALID:
                continue
            extended = bool(cob & _COB_EXTENDED)
            entries: list[PdoEntry] = []
            offset = 0
            for s in range(1, (_sub(mapping, 0) or 0) + 1):
                value = _sub(mapping, s) or 0
                index, subindex, length = value >> 16, (value >> 8) & 0xFF, value & 0xFF
                var: ODVariable | None = None
                if index >= 0x1000:  # below: dummy entries (data type indices), a gap
                    obj = od[index]
                    var = obj if isinstance(obj, ODVariable) else obj[subindex]
                entries.append(PdoEntry(index, subindex, offset, length, var))
                offset += length
            if not entries:
                continue
            out.append(
                PdoDef(
                    direction=direction,
                    number=n + 1,
                    cob_id=cob & (0x1FFFFFFF if extended else 0x7FF),
                    extended=extended,
                    trans_type=_sub(comm, 2) or 0,
                    inhibit_100us=_sub(comm, 3) or 0,
                    event_timer_ms=_sub(comm, 5) or 0,
                    entries=tuple(entries),
                )
            )
    return out


@cache
def node_od(eds: pathlib.Path, node_id: int) -> ObjectDictionary:
    """The object dictionary of one node (``$NODEID`` resolved); cached, do not modify."""
    return canopen.import_od(str(eds), node_id=node_id)


# --------------------------------------------------------------------------- DBC


def dbc_identifier(text: str) -> str:
    """``text`` as a valid DBC identifier (letters, digits, ``_``; no leading digit)."""
    ident = re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_") or "x"
    return f"_{ident}" if ident[0].isdigit() else ident


def _clean(text: str) -> str:
    return " ".join(text.replace('"', "'").split())


def _num(x: float) -> float:
    """A range bound without binary noise (3276.7, not 3276.7000000000003)."""
    return float(f"{x:.10g}")


def _signal(
    entry: PdoEntry, name: str, kind: str, ref: ObjectRef | None, receivers: list[str]
) -> Signal:
    var = entry.var
    assert var is not None
    is_float = var.data_type in dt.FLOAT_TYPES
    is_signed = var.data_type in dt.SIGNED_TYPES or is_float
    scale = ref.scale if ref is not None else float(var.factor or 1)
    if scale == int(scale):
        scale = int(scale)
    address = f"0x{var.index:04X}:{var.subindex:02X} {getattr(var, 'qualname', var.name)}"
    parts = [_clean(var.description)] if var.description else []
    parts.append(f"[{address}" + (f"; profile {kind}.{ref.name}]" if ref else "]"))
    if is_float:
        lo = hi = None
    else:
        lo_raw = -(1 << (entry.length - 1)) if is_signed else 0
        hi_raw = (1 << (entry.length - 1)) - 1 if is_signed else (1 << entry.length) - 1
        lo, hi = _num(lo_raw * scale), _num(hi_raw * scale)
    return Signal(
        name=name,
        start=entry.offset,
        length=entry.length,
        byte_order="little_endian",
        is_signed=is_signed and not is_float,
        conversion=BaseConversion.factory(scale=scale, offset=0, is_float=is_float),
        minimum=lo,
        maximum=hi,
        unit=var.unit or None,
        comment=" ".join(parts),
        receivers=receivers,
    )


def _signal_names(entries: Iterable[PdoEntry]) -> list[str]:
    names: list[str] = []
    for e in entries:
        assert e.var is not None
        base = dbc_identifier(e.var.name)
        name = base if base not in names else f"{base}_{e.index:04X}_{e.subindex:02X}"
        names.append(name)
    return names


def _pdo_message(
    node: StationNode, pdo: PdoDef, refs: dict[tuple[int, int], ObjectRef], config: Config
) -> Message:
    tpdo = pdo.direction == "TPDO"
    sender, receiver = (node.name, SUPERVISOR) if tpdo else (SUPERVISOR, node.name)
    mapped = [e for e in pdo.entries if e.var is not None]
    signals = [
        _signal(e, name, node.kind, refs.get((e.index, e.subindex)), [receiver])
        for e, name in zip(mapped, _signal_names(mapped), strict=True)
    ]
    if tpdo:
        timing = f"event timer {pdo.event_timer_ms} ms"
        if pdo.trans_type == 255:
            timing += f", on change after {pdo.inhibit_100us / 10:g} ms inhibit"
        cycle = pdo.event_timer_ms or None
    else:
        timing = (
            f"device deadline {pdo.event_timer_ms} ms, " if pdo.event_timer_ms else "no deadline, "
        ) + (
            f"sent on change (>= {config.can.rpdo_inhibit_ms} ms apart) "
            f"and every {config.can.rpdo_refresh_ms} ms"
        )
        cycle = config.can.rpdo_refresh_ms
    return Message(
        frame_id=pdo.cob_id,
        name=f"{node.name}_{pdo.name}",
        length=pdo.dlc,
        signals=signals,
        comment=(
            f"{pdo.name} of the {node.label} (node 0x{node.node_id:02X}): "
            f"transmission type {pdo.trans_type}, {timing}"
        ),
        senders=[sender],
        cycle_time=cycle,
        is_extended_frame=pdo.extended,
        strict=True,
    )


def _heartbeat_message(node: StationNode, all_nodes: list[str]) -> Message:
    if node.name == SUPERVISOR:
        receivers = [n for n in all_nodes if n != node.name]
    else:
        receivers = [SUPERVISOR]
    state = Signal(
        name="nmt_state",
        start=0,
        length=8,
        byte_order="little_endian",
        is_signed=False,
        conversion=BaseConversion.factory(
            scale=1, offset=0, choices=OrderedDict(sorted(NMT_STATES.items()))
        ),
        minimum=0,
        maximum=127,
        comment="NMT state of the producer (0 = boot-up)",
        receivers=receivers,
    )
    return Message(
        frame_id=0x700 + node.node_id,
        name=f"HB_{node.name}",
        length=1,
        signals=[state],
        comment=f"Heartbeat of the {node.label} (node 0x{node.node_id:02X}), "
        f"every {node.heartbeat_ms} ms",
        senders=[node.name],
        cycle_time=node.heartbeat_ms,
    )


def _emcy_message(node: StationNode, od: ObjectDictionary) -> Message:
    cob = 0x80 + node.node_id
    if 0x1014 in od and isinstance(od[0x1014], ODVariable) and od[0x1014].default is not None:
        cob = int(od[0x1014].default) & 0x7FF
    receivers = [SUPERVISOR] if node.name != SUPERVISOR else []
    codes = OrderedDict(sorted(emcy.TEXTS.items()))
    signals = [
        Signal(
            name="error_code",
            start=0,
            length=16,
            byte_order="little_endian",
            conversion=BaseConversion.factory(scale=1, offset=0, choices=codes),
            minimum=0,
            maximum=0xFFFF,
            comment="CiA 301 error code; 0x0000 = error reset (all errors gone)",
            receivers=receivers,
        ),
        Signal(
            name="error_register",
            start=16,
            length=8,
            byte_order="little_endian",
            minimum=0,
            maximum=0xFF,
            comment="object 0x1001: bit 0 generic, 1 current, 2 voltage, 3 temperature, "
            "4 communication, 5 profile, 7 manufacturer",
            receivers=receivers,
        ),
        Signal(
            name="data",
            start=24,
            length=40,
            byte_order="little_endian",
            minimum=0,
            maximum=(1 << 40) - 1,
            comment="manufacturer data; over-temperature byte 0: 1 = derating warning, 2 = trip",
            receivers=receivers,
        ),
    ]
    return Message(
        frame_id=cob,
        name=f"EMCY_{node.name}",
        length=8,
        signals=signals,
        comment=f"Emergency messages of the {node.label} (node 0x{node.node_id:02X})",
        senders=[node.name],
    )


#: NMT command specifiers (CiA 301), byte 0 of the NMT frame at COB-ID 0x000.
NMT_COMMANDS = {
    1: "START",
    2: "STOP",
    0x80: "ENTER_PRE_OPERATIONAL",
    0x81: "RESET_NODE",
    0x82: "RESET_COMMUNICATION",
}


def _nmt_message(all_nodes: list[str]) -> Message:
    receivers = [n for n in all_nodes if n != SUPERVISOR]
    signals = [
        Signal(
            name="command",
            start=0,
            length=8,
            byte_order="little_endian",
            conversion=BaseConversion.factory(
                scale=1, offset=0, choices=OrderedDict(sorted(NMT_COMMANDS.items()))
            ),
            minimum=0,
            maximum=0xFF,
            comment="NMT command specifier",
            receivers=receivers,
        ),
        Signal(
            name="node_id",
            start=8,
            length=8,
            byte_order="little_endian",
            minimum=0,
            maximum=127,
            comment="addressed node; 0 = all nodes",
            receivers=receivers,
        ),
    ]
    return Message(
        frame_id=0x000,
        name="NMT",
        length=2,
        signals=signals,
        comment="NMT module control from the supervisor (the NMT master)",
        senders=[SUPERVISOR],
    )


def build_database(
    config: Config | None = None, profile: Profile | None = None, n_modules: int | None = None
) -> Database:
    """The cantools database of a station (the reference station by default)."""
    config = config or load_config()
    profile = profile or load_profile(config.station.profile or None)
    nodes = station_nodes(config, n_modules)
    names = [n.name for n in nodes]
    messages: list[Message] = [_nmt_message(names)]
    for node in nodes:
        device = profile[node.kind]
        od = node_od(device.eds, node.node_id)
        refs = device.by_address()
        messages.extend(_pdo_message(node, pdo, refs, config) for pdo in pdo_defs(od))
        messages.append(_heartbeat_message(node, names))
        messages.append(_emcy_message(node, od))
    messages.sort(key=lambda m: m.frame_id)
    seen: dict[int, str] = {}
    for m in messages:
        if m.frame_id in seen:
            raise ValueError(f"COB-ID 0x{m.frame_id:03X} used by {seen[m.frame_id]} and {m.name}")
        seen[m.frame_id] = m.name
    db_nodes = [Node(n.name, comment=f"{n.label}, node-id 0x{n.node_id:02X}") for n in nodes]
    return Database(messages=messages, nodes=db_nodes, version="")


def generate_dbc(
    config: Config | None = None, profile: Profile | None = None, n_modules: int | None = None
) -> str:
    """The DBC text of a station; deterministic, so it can be compared with a committed file."""
    text = build_database(config, profile, n_modules).as_dbc_string()
    return text if text.endswith("\n") else text + "\n"
