"""Telemetry to CSV, one row per message, and the loader the analysis reads it back with.

The file (format described in docs/lab.md) has one fixed header, :data:`COLUMNS`; a row
fills the columns its topic has and leaves the others empty:

- every row: ``t`` (the daemon's wall time, ISO 8601 UTC), ``mono`` (the daemon's
  ``time.monotonic()``, s: use it for intervals), ``topic``, ``name`` (connector name or
  module number);
- ``connector.<name>``: ``state``, ``setpoint_w``, the DC measurements ``voltage_v``,
  ``current_a``, ``power_w`` (from its modules), ``applied_current_a`` (what the modules
  are told after limits and ramp), ``charge_limit_w`` / ``discharge_limit_w``, ``modules``;
- ``module.<n>``: ``owner`` (connector), ``state`` (DC/DC / AFE state codes), the DC side
  ``voltage_v``, ``current_a``, ``power_w``, the AC side ``ac_power_w``,
  ``reactive_power_var``, ``grid_frequency_hz``, ``temperature_c``;
- ``event``: ``kind``, ``name`` (its connector), ``text``; for ``command_applied`` (the
  sync marker) also ``command``, ``args`` (JSON), ``received_mono`` (the daemon handled
  the request) and ``sent_mono`` (the tick it triggered handed the RPDOs to the bus);
- ``lab.step`` (written by ``bptctl pattern``, not by the daemon): one row per pattern
  step: ``name`` (connector), ``step``, ``setpoint_w``, ``mono`` (the client's
  ``time.monotonic()`` just before the request), ``received_mono`` / ``sent_mono`` (from
  the matching ``command_applied``, empty when none came), ``sync`` (``daemon`` or
  ``client``), ``args`` (the reply, JSON).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

COLUMNS = (
    "t",
    "mono",
    "topic",
    "name",
    "state",
    "owner",
    "modules",
    "setpoint_w",
    "voltage_v",
    "current_a",
    "power_w",
    "ac_power_w",
    "reactive_power_var",
    "grid_frequency_hz",
    "temperature_c",
    "applied_current_a",
    "charge_limit_w",
    "discharge_limit_w",
    "kind",
    "command",
    "args",
    "received_mono",
    "sent_mono",
    "step",
    "sync",
    "text",
)
#: what ``bptctl record`` subscribes to by default
TOPICS = ("connector", "module", "event")
CONNECTOR_FIELDS = ("state", "setpoint_w", "voltage_v", "current_a", "power_w",
                    "applied_current_a")  # fmt: skip
MODULE_FIELDS = ("voltage_v", "current_a", "power_w", "ac_power_w", "reactive_power_var",
                 "grid_frequency_hz", "temperature_c")  # fmt: skip
#: numeric columns of the loaded series
SERIES_FIELDS = ("mono", "setpoint_w", "voltage_v", "current_a", "power_w", "ac_power_w",
                 "reactive_power_var", "applied_current_a")  # fmt: skip


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # numpy floats too
        return repr(float(value)) if math.isfinite(value) else ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def flatten(topic: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """The CSV row of one telemetry message (only the columns it has)."""
    row: dict[str, Any] = {"t": payload.get("t"), "mono": payload.get("mono"), "topic": topic}
    kind, _, name = topic.partition(".")
    if kind == "connector":
        row["name"] = name or payload.get("connector")
        for key in CONNECTOR_FIELDS:
            row[key] = payload.get(key)
        mods = payload.get("modules")
        if isinstance(mods, list):
            row["modules"] = " ".join(str(m) for m in mods)
        limits = payload.get("limits")
        if isinstance(limits, dict):
            row["charge_limit_w"] = limits.get("charge_power_w")
            row["discharge_limit_w"] = limits.get("discharge_power_w")
    elif kind == "module":
        row["name"] = name or payload.get("module")
        row["owner"] = payload.get("connector")
        row["state"] = f"{_text(payload.get('dcdc_state'))}/{_text(payload.get('afe_state'))}"
        for key in MODULE_FIELDS:
            row[key] = payload.get(key)
    elif kind == "event":
        row["kind"] = payload.get("kind")
        row["name"] = payload.get("connector", payload.get("module"))
        if payload.get("kind") == "command_applied":
            row["command"] = payload.get("command")
            row["args"] = payload.get("args")
            row["received_mono"] = payload.get("received_mono")
            row["sent_mono"] = payload.get("sent_mono")
        else:
            text = payload.get("text")
            if text is None:
                rest = {k: v for k, v in payload.items()
                        if k not in ("t", "mono", "kind", "connector")}  # fmt: skip
                text = rest or None
            row["text"] = text
            if payload.get("kind") == "command":
                row["command"] = payload.get("command")
    else:
        row["text"] = {k: v for k, v in payload.items() if k not in ("t", "mono")}
    return {k: _text(v) for k, v in row.items() if v is not None}


class RecordWriter:
    """CSV with the fixed header; ``write(topic, payload)`` one message, ``row`` a raw row."""

    def __init__(self, path: str | Path, flush_every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = self.path.open("w", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._file, COLUMNS, extrasaction="ignore")
        self._csv.writeheader()
        self.rows = 0
        self._flush_every_s = flush_every_s
        self._last_flush = time.monotonic()

    def write(self, topic: str, payload: Mapping[str, Any]) -> None:
        self.row(flatten(topic, payload))

    def row(self, row: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"recording {self.path} is closed")
        self._csv.writerow({k: _text(v) if not isinstance(v, str) else v
                            for k, v in row.items()})  # fmt: skip
        self.rows += 1
        now = time.monotonic()
        if now - self._last_flush >= self._flush_every_s:
            self._file.flush()
            self._last_flush = now

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- recording loop


def record(
    sub: Any,
    writer: RecordWriter,
    duration_s: float | None,
    timeout_s: float,
    status: Callable[[str], None] | None = None,
) -> bool:
    """Write every message of ``sub`` until ``duration_s`` has passed (None: until
    interrupted). False when no message came for ``timeout_s``."""
    start = last_message = last_status = time.monotonic()
    end = math.inf if duration_s is None else start + duration_s
    while True:
        now = time.monotonic()
        if now >= end:
            return True
        if now - last_message >= timeout_s:
            return False
        message = sub.recv(max(0.0, min(last_message + timeout_s, end) - now))
        if message is None:
            continue
        last_message = time.monotonic()
        writer.write(*message)
        if status is not None and now - last_status >= 1.0:
            last_status = now
            status(f"{writer.rows} rows, {now - start:.0f} s")


# ---------------------------------------------------------------------- loading


def _float(text: str) -> float:
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class Series:
    """The numeric columns of one connector or module, in time order (``mono``)."""

    columns: dict[str, np.ndarray]
    state: list[str] = field(default_factory=list)
    owner: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.columns[key]

    def __len__(self) -> int:
        return len(self.columns["mono"])


@dataclass
class Command:
    """A ``command_applied`` marker (or a ``lab.step`` row)."""

    command: str
    connector: str | None
    args: dict[str, Any]
    mono: float
    received_mono: float
    sent_mono: float
    step: int | None = None
    sync: str = "daemon"
    setpoint_w: float = math.nan

    @property
    def power_w(self) -> float:
        """The setpoint it asked for (W), NaN when it is not a setpoint."""
        if math.isfinite(self.setpoint_w):
            return self.setpoint_w
        value = self.args.get("power_w")
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else math.nan

    @property
    def at(self) -> float:
        """When the command reached the modules' bus (sent), else when it was received,
        else the client's time of the request."""
        for value in (self.sent_mono, self.received_mono, self.mono):
            if math.isfinite(value):
                return value
        return math.nan


@dataclass
class Recording:
    connectors: dict[str, Series]
    modules: dict[str, Series]
    commands: list[Command]
    steps: list[Command]
    events: list[dict[str, str]]
    #: (mono, wall ISO) of the first telemetry row, to turn ``mono`` into wall time
    origin: tuple[float, str] | None = None
    source: str = ""

    def span(self) -> tuple[float, float]:
        monos = [s["mono"] for s in (*self.connectors.values(), *self.modules.values())
                 if len(s)]  # fmt: skip
        if not monos:
            return (math.nan, math.nan)
        return (min(float(m[0]) for m in monos), max(float(m[-1]) for m in monos))


def _series(rows: list[dict[str, str]]) -> Series:
    rows.sort(key=lambda r: _float(r.get("mono", "")))
    cols = {k: np.array([_float(r.get(k, "")) for r in rows]) for k in SERIES_FIELDS}
    return Series(cols, [r.get("state", "") for r in rows], [r.get("owner", "") for r in rows])


def _args(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def load(path: str | Path) -> Recording:
    """A recording written by :class:`RecordWriter` (``bptctl record`` / ``pattern``)."""
    path = Path(path)
    by_connector: dict[str, list[dict[str, str]]] = {}
    by_module: dict[str, list[dict[str, str]]] = {}
    commands: list[Command] = []
    steps: list[Command] = []
    events: list[dict[str, str]] = []
    origin: tuple[float, str] | None = None
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "topic" not in reader.fieldnames:
            raise ValueError(f"{path} is not a bptd recording (no 'topic' column)")
        for row in reader:
            topic = row.get("topic", "")
            kind = topic.partition(".")[0]
            if kind == "connector":
                by_connector.setdefault(row.get("name", ""), []).append(row)
            elif kind == "module":
                by_module.setdefault(row.get("name", ""), []).append(row)
            elif topic == "lab.step":
                steps.append(_command(row))
                continue
            elif kind == "event":
                events.append(row)
                if row.get("kind") == "command_applied":
                    commands.append(_command(row))
                continue
            else:
                continue
            if origin is None and row.get("t") and math.isfinite(_float(row.get("mono", ""))):
                origin = (_float(row["mono"]), row["t"])
    commands.sort(key=lambda c: c.at)
    steps.sort(key=lambda c: c.mono)
    return Recording(
        {k: _series(v) for k, v in by_connector.items()},
        {k: _series(v) for k, v in sorted(by_module.items(), key=lambda kv: _order(kv[0]))},
        commands,
        steps,
        events,
        origin,
        str(path),
    )


def _order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def _command(row: Mapping[str, str]) -> Command:
    step = row.get("step", "")
    return Command(
        command=row.get("command", "") or "setpoint",
        connector=row.get("name") or None,
        args=_args(row.get("args", "")),
        mono=_float(row.get("mono", "")),
        received_mono=_float(row.get("received_mono", "")),
        sent_mono=_float(row.get("sent_mono", "")),
        step=int(step) if step.isdigit() else None,
        sync=row.get("sync", "") or "daemon",
        setpoint_w=_float(row.get("setpoint_w", "")),
    )


def write_rows(path: str | Path, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
    """Write ``(topic, payload)`` messages to a new recording (tests, conversions)."""
    with RecordWriter(path) as w:
        for topic, payload in rows:
            w.write(topic, payload)
        return w.rows
