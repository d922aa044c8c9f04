"""PDO I/O of one node: TPDO decoding into SI values, RPDO staging, packing and timing.

The layouts come from the EDS defaults (:func:`bptd.dbcgen.pdo_defs`), which are also what
the boot sequence writes into the device, so both ends agree by construction. Decoding and
packing are done here, in the loop thread, from raw frames the notifier thread queued;
canopen's ``PdoMap`` objects are not used (their values are shared with the notifier thread).

RPDO policy (``Fieldbus.flush``): a changed RPDO goes out at once unless it was sent less
than ``rpdo_inhibit_ms`` ago (then at the end of the inhibit time); every RPDO is re-sent
at least every ``rpdo_refresh_ms`` so the device's RPDO deadline (its event timer) only
trips when the supervisor is really gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from canopen.objectdictionary import datatypes as dt

from bptd.dbcgen import PdoDef, node_od, pdo_defs
from bptd.fieldbus.nodes import NodeSpec
from bptd.profile import COMMAND, STATUS, ObjectRef

NEVER = float("-inf")


@dataclass(frozen=True)
class Field:
    """One mapped object in a PDO frame."""

    offset: int
    length: int
    signed: bool
    ref: ObjectRef | None  # None: mapped but not named by the profile (or a dummy entry)
    default: int  # EDS default raw value (RPDO safe value)


def _fields(pdo: PdoDef, role: str, by_addr: dict[tuple[int, int], ObjectRef]) -> list[Field]:
    out = []
    for e in pdo.entries:
        ref = by_addr.get((e.index, e.subindex))
        if ref is not None and ref.role != role:
            ref = None
        signed = e.var is not None and e.var.data_type in dt.SIGNED_TYPES
        default = int(e.var.default or 0) if e.var is not None else 0
        out.append(Field(e.offset, e.length, signed, ref, default))
    return out


def unpack(fields: list[Field], data: bytes) -> Iterator[tuple[Field, int]]:
    acc = int.from_bytes(data, "little")
    for f in fields:
        raw = (acc >> f.offset) & ((1 << f.length) - 1)
        if f.signed and raw & (1 << (f.length - 1)):
            raw -= 1 << f.length
        yield f, raw


def pack(fields: list[Field], values: list[int], dlc: int) -> bytes:
    acc = 0
    for f, raw in zip(fields, values, strict=True):
        acc |= (raw & ((1 << f.length) - 1)) << f.offset
    return acc.to_bytes(dlc, "little")


@dataclass(frozen=True)
class Tpdo:
    number: int
    cob_id: int
    dlc: int
    fields: list[Field]


@dataclass
class Rpdo:
    number: int
    cob_id: int
    dlc: int
    fields: list[Field]
    values: list[int]
    dirty: bool = True
    last_sent: float = NEVER
    sent: int = 0

    def reset(self) -> None:
        self.values = [f.default for f in self.fields]
        self.dirty = True
        self.last_sent = NEVER

    def frame(self) -> bytes:
        return pack(self.fields, self.values, self.dlc)


class StatusValues(Mapping[str, float]):
    """Latest status values of one node by semantic name, in SI units.

    A live view: ``Fieldbus.poll()`` updates it as TPDOs arrive. :meth:`received_at` gives
    the monotonic receive time of the TPDO that carried a value, ``tpdo_received`` the
    receive time per TPDO number, so stale data can be detected.
    """

    def __init__(self) -> None:
        self._values: dict[str, float] = {}
        self._received: dict[str, float] = {}
        self.tpdo_received: dict[int, float] = {}

    def __getitem__(self, name: str) -> float:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:  # the Mapping defaults go via KeyError
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def received_at(self, name: str) -> float | None:
        return self._received.get(name)

    def age(self, name: str, now: float) -> float:
        """Seconds since ``name`` was last received (infinite when never)."""
        t = self._received.get(name)
        return float("inf") if t is None else now - t

    def clear(self) -> None:
        self._values.clear()
        self._received.clear()
        self.tpdo_received.clear()

    def __repr__(self) -> str:
        return f"StatusValues({self._values!r})"


@dataclass
class NodePdos:
    """Every PDO of one node, plus its status values and staged commands."""

    spec: NodeSpec
    defs: list[PdoDef]
    tpdos: dict[int, Tpdo] = field(default_factory=dict)  # by COB-ID
    rpdos: list[Rpdo] = field(default_factory=list)
    commands: dict[str, tuple[Rpdo, int]] = field(default_factory=dict)
    status: StatusValues = field(default_factory=StatusValues)
    short_frames: int = 0
    #: name -> (last staged SI value, (rpdo, index, raw)): an unchanged value of exact type
    #: float or int is not validated and converted again (same value, same raw)
    _last: dict[str, tuple[float, tuple[Rpdo, int, int]]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, spec: NodeSpec) -> NodePdos:
        defs = pdo_defs(node_od(spec.device.eds, spec.node_id))
        by_addr = spec.device.by_address()
        pdos = cls(spec, defs)
        for d in defs:
            if d.direction == "TPDO":
                pdos.tpdos[d.cob_id] = Tpdo(d.number, d.cob_id, d.dlc, _fields(d, STATUS, by_addr))
            else:
                fields = _fields(d, COMMAND, by_addr)
                r = Rpdo(d.number, d.cob_id, d.dlc, fields, [f.default for f in fields])
                pdos.rpdos.append(r)
                for i, f in enumerate(fields):
                    if f.ref is not None:
                        pdos.commands[f.ref.name] = (r, i)
        return pdos

    # ------------------------------------------------------------------ TPDO (loop thread)
    def receive(self, cob_id: int, data: bytes, at: float) -> bool:
        """Decode one TPDO frame; False when it is too short (counted, values kept)."""
        t = self.tpdos.get(cob_id)
        if t is None:
            return False
        if len(data) < t.dlc:
            self.short_frames += 1
            return False
        st = self.status
        for f, raw in unpack(t.fields, data):
            if f.ref is not None:
                st._values[f.ref.name] = f.ref.to_si(raw)
                st._received[f.ref.name] = at
        st.tpdo_received[t.number] = at
        return True

    # ------------------------------------------------------------------ RPDO staging
    def stage(self, si_values: Mapping[str, float]) -> None:
        """Validate every value first; only then apply (all or nothing)."""
        raws: list[tuple[Rpdo, int, int]] = []
        last = self._last
        for name, value in si_values.items():
            exact = type(value) is float or type(value) is int
            hit = last.get(name)
            if exact and hit is not None and hit[0] == value:
                raws.append(hit[1])
                continue
            ref = self.spec.device[name]  # KeyError lists the known names
            if name not in self.commands:
                raise ValueError(f"{self.spec.key}.{name} is a {ref.role}, not a PDO command")
            r, i = self.commands[name]
            entry = (r, i, ref.to_raw(value))
            raws.append(entry)
            if exact:
                last[name] = (value, entry)
        for r, i, raw in raws:
            if r.values[i] != raw:
                r.values[i] = raw
                r.dirty = True

    def staged(self) -> dict[str, float]:
        """The staged command values in SI units."""
        out = {}
        for name, (r, i) in self.commands.items():
            ref = r.fields[i].ref
            assert ref is not None
            out[name] = ref.to_si(r.values[i])
        return out

    def reset_commands(self) -> None:
        """Back to the EDS defaults (safe values), so a re-booted node never gets stale ones."""
        for r in self.rpdos:
            r.reset()

    def due(self, now: float, inhibit_s: float, refresh_s: float) -> Iterator[Rpdo]:
        for r in self.rpdos:
            since = now - r.last_sent
            if (r.dirty and since >= inhibit_s) or since >= refresh_s:
                yield r
