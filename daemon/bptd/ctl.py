"""``bptctl``: every API command from the shell, and a live view of the telemetry.

    bptctl status
    bptctl setpoint connector=ccs power_w=-5000
    bptctl --control ipc:///run/bptd/sim.sock sim action=plug connector=ccs vehicle=bpt
    bptctl --json status | jq .connectors
    bptctl sessions limit=20
    bptctl watch                      # live table of connectors, modules and events
    bptctl watch --json event         # one JSON line per message of the topic
    bptctl --control tcp://charger:5555 --server-key server.key status
    bptctl record --output run.csv --duration 60      # telemetry to CSV (docs/lab.md)
    bptctl pattern b connector=ccs interval_s=10 --output lab/b1   # thesis pattern b
    bptctl report lab/b1 lab/b2 --output lab/both     # re-analyse recordings together

Arguments are ``key=value``; a value is read as JSON when it parses (numbers, true/false,
null, lists, objects) and as a string otherwise. A refused request prints
``error <code>: <message>`` on stderr and exits 1; bad usage exits 2; a daemon that does
not answer (or, for ``watch``, telemetry that does not come within ``--timeout``) exits 3.
``pattern`` exits 1 when the connector is not in ``energy_transfer`` (nothing is sent) or
the session stops during the pattern, and 130 on Ctrl-C, after putting the setpoint back
to 0; ``record`` ends with exit 0 on Ctrl-C or after ``--duration``.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import zmq

from bptd.api.client import Client, Subscriber
from bptd.api.protocol import ApiError, ErrorCode
from bptd.errors import ConfigError

DEFAULT_CONTROL = "ipc:///run/bptd/control.sock"
DEFAULT_TELEMETRY = "ipc:///run/bptd/telemetry.sock"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NO_DAEMON, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EVENTS_SHOWN = 10
REFRESH_TTY_S = 0.25  # the live table is redrawn at most this often on a terminal
REFRESH_PLAIN_S = 1.0  # and a block appended at most this often otherwise
CLEAR_HOME = "\x1b[H\x1b[2J"


def parse_args_kv(items: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; raises ValueError on a bare word."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {item!r} is not key=value")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


# ---------------------------------------------------------------------- formatting


def _human(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{k}:")
                lines.append(_human(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(
            f"{pad}- {_scalar(v)}"
            if not isinstance(v, dict | list)
            else f"{pad}-\n{_human(v, indent + 1)}"
            for v in value
        )
    return f"{pad}{_scalar(value)}"


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if v is None:
        return "-"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)


def _num(value: Any, digits: int = 1, unit: str = "", scale: float = 1.0) -> str:
    """``12.3 A``; ``-`` for a missing or non-numeric value."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    text = f"{value * scale:.{digits}f}"
    return f"{text} {unit}" if unit else text


def _kw(value: Any) -> str:
    return _num(value, 2, "kW", 1e-3)


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _limit(limits: Any, direction: str) -> str:
    """``125.0 A (soa_power)`` from the ``limits`` object; ``-`` when absent."""
    if not isinstance(limits, dict):
        return "-"
    current = _num(limits.get(f"{direction}_current_a"), 1, "A")
    binding = limits.get(f"binding_{direction}")
    return current if not binding else f"{current} ({_text(binding)})"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A plain text table; the columns whose index is in ``right`` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _state(item: dict[str, Any]) -> str:
    state = _text(item.get("state"))
    fault = item.get("fault")
    return f"{state}: {_text(fault)}" if fault else state


def _allocation(c: dict[str, Any]) -> str:
    """``1,2 parallel`` from ``allocation`` (status) or ``modules`` (telemetry)."""
    alloc = c.get("allocation", c.get("modules"))
    if isinstance(alloc, dict):
        modules = _text(alloc.get("modules"))
        topology = alloc.get("topology")
        return f"{modules} {topology}" if topology and modules != "-" else modules
    return _text(alloc)


CONNECTOR_HEADERS = (
    "connector",
    "state",
    "modules",
    "voltage",
    "current",
    "power",
    "setpoint",
    "charge limit",
    "discharge limit",
    "energy in",
    "energy out",
)
CONNECTOR_RIGHT = {3, 4, 5, 6, 9, 10}


def connector_row(name: str, c: dict[str, Any]) -> list[str]:
    return [
        _text(c.get("connector", name)),
        _state(c),
        _allocation(c),
        _num(c.get("voltage_v"), 1, "V"),
        _num(c.get("current_a"), 1, "A"),
        _kw(c.get("power_w")),
        _kw(c.get("setpoint_w")),
        _limit(c.get("limits"), "charge"),
        _limit(c.get("limits"), "discharge"),
        _num(c.get("energy_import_wh"), 1, "Wh"),
        _num(c.get("energy_export_wh"), 1, "Wh"),
    ]


MODULE_HEADERS = (
    "module",
    "owner",
    "state",
    "voltage",
    "current",
    "power",
    "ac power",
    "temp",
    "derating",
)
MODULE_RIGHT = {0, 3, 4, 5, 6, 7, 8}


def module_row(n: str, m: dict[str, Any]) -> list[str]:
    if m.get("state") is not None:
        state = _text(m.get("state"))
    elif m.get("dcdc_state") is None and m.get("afe_state") is None:
        state = "-"
    else:
        state = "/".join(_text(m.get(k)) for k in ("dcdc_state", "afe_state"))
    if m.get("online") is False:
        state = "offline" if state == "-" else f"{state} offline"
    owner = m.get("connector", m.get("owner"))
    temperature = m.get("temperature_c", m.get("temp_c"))
    return [
        _text(m.get("module", n)),
        _text(owner),
        state,
        _num(m.get("voltage_v"), 1, "V"),
        _num(m.get("current_a"), 1, "A"),
        _kw(m.get("power_w")),
        _kw(m.get("ac_power_w")),
        _num(temperature, 1, "degC"),
        _num(m.get("derating"), 2),
    ]


def _module_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def connectors_table(connectors: dict[str, Any]) -> str:
    rows = [connector_row(k, v) for k, v in connectors.items() if isinstance(v, dict)]
    return table(CONNECTOR_HEADERS, rows, CONNECTOR_RIGHT)


def modules_table(modules: dict[str, Any]) -> str:
    keys = sorted((str(k) for k in modules), key=_module_order)
    rows = [module_row(k, modules[k]) for k in keys if isinstance(modules.get(k), dict)]
    return table(MODULE_HEADERS, rows, MODULE_RIGHT)


def station_line(station: Any) -> str:
    if not isinstance(station, dict) or not station:
        return "station: -"
    parts = []
    for key, value in station.items():
        if key in ("t", "mono"):
            continue
        if key == "bus_load_percent":
            parts.append(f"bus load {_num(value, 1, '%')}")
        else:
            parts.append(f"{key} {_text(value)}")
    return "station: " + ", ".join(parts)


def status_summary(result: Any) -> str | None:
    """The readable form of the daemon's ``status``; None when ``result`` is not one."""
    if not isinstance(result, dict) or not isinstance(result.get("connectors"), dict):
        return None
    if "station" not in result:
        return None
    parts = [station_line(result.get("station")), "", connectors_table(result["connectors"])]
    modules = result.get("modules")
    if isinstance(modules, dict) and modules:
        parts += ["", modules_table(modules)]
    return "\n".join(parts)


SESSION_HEADERS = (
    "session",
    "connector",
    "started",
    "stopped",
    "reason",
    "energy in",
    "energy out",
)


def sessions_table(result: Any) -> str | None:
    """The readable form of the ``sessions`` result; None when ``result`` is not one."""
    sessions = result.get("sessions") if isinstance(result, dict) else None
    if not isinstance(sessions, list):
        return None
    if not sessions:
        return "no sessions"
    rows = [
        [
            _text(s.get("session_id"))[:8],
            _text(s.get("connector")),
            _text(s.get("started")),
            _text(s.get("stopped")) if s.get("stopped") else "open",
            _text(s.get("reason")),
            _num(s.get("energy_import_wh"), 1, "Wh"),
            _num(s.get("energy_export_wh"), 1, "Wh"),
        ]
        for s in sessions
        if isinstance(s, dict)
    ]
    return table(SESSION_HEADERS, rows, {5, 6})


HUMAN: dict[str, Callable[[Any], str | None]] = {
    "status": status_summary,
    "sessions": sessions_table,
}


def human_output(command: str, result: Any) -> str:
    """The readable form of ``command``'s result: a summary where one fits, else a dump."""
    special = HUMAN.get(command)
    text = special(result) if special else None
    return _human(result) if text is None else text


# ---------------------------------------------------------------------- watch


class WatchView:
    """The latest message of every connector and module, and the last events."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.station: dict[str, Any] = {}
        self.connectors: dict[str, dict[str, Any]] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.events: collections.deque[str] = collections.deque(maxlen=EVENTS_SHOWN)
        self.messages = 0
        self.last_t = "-"

    def update(self, topic: str, payload: dict[str, Any]) -> None:
        self.messages += 1
        self.last_t = _text(payload.get("t"))
        kind, _, name = topic.partition(".")
        if kind == "connector":
            self.connectors[name or _text(payload.get("connector"))] = payload
        elif kind == "module":
            self.modules[name or _text(payload.get("module"))] = payload
        elif kind == "station":
            self.station = payload
        elif kind == "event":
            self.events.append(event_line(payload))

    def render(self) -> str:
        parts = [
            f"bptd telemetry {self.endpoint}  at {self.last_t}  ({self.messages} messages)",
            station_line(self.station),
            "",
            connectors_table(self.connectors),
            "",
            modules_table(self.modules),
            "",
            f"events (last {EVENTS_SHOWN}):",
            *(self.events or ["-"]),
        ]
        return "\n".join(parts)


def event_line(payload: dict[str, Any]) -> str:
    """``12:00:00.123 state_change ccs  text`` for an ``event`` message."""
    t = _text(payload.get("t"))
    clock = t[11:23] if len(t) >= 23 else t
    kind = _text(payload.get("kind"))
    where = payload.get("connector", payload.get("module"))
    text = payload.get("text", payload.get("detail"))
    if text is None:
        rest = {
            k: v
            for k, v in payload.items()
            if k not in ("t", "mono", "kind", "connector", "module")
        }
        text = _text(rest) if rest else ""
    cells = [clock, kind, _text(where) if where is not None else "", _text(text)]
    return "  ".join(c for c in cells if c).rstrip()


def watch(
    endpoint: str,
    topics: Sequence[str],
    timeout_s: float,
    count: int | None,
    as_json: bool,
    server_key: str | None,
    client_keys: tuple[str, str] | None,
    out: TextIO,
) -> int:
    """Stream telemetry to ``out``; the exit code of ``bptctl watch``."""
    tty = out.isatty()
    refresh_s = REFRESH_TTY_S if tty else REFRESH_PLAIN_S
    view = WatchView(endpoint)
    last_render = -math.inf
    dirty = False

    def render() -> None:
        out.write((CLEAR_HOME if tty else "") + view.render() + "\n" + ("" if tty else "\n"))
        out.flush()

    with Subscriber(
        endpoint, topics or ("",), server_key=server_key, client_keys=client_keys
    ) as sub:
        while count is None or view.messages < count:
            message = sub.recv(timeout_s)
            if message is None:
                if dirty and not as_json:
                    render()
                print(
                    f"error {ErrorCode.TIMEOUT}: no telemetry from {endpoint} within {timeout_s} s",
                    file=sys.stderr,
                )
                return EXIT_NO_DAEMON
            topic, payload = message
            view.update(topic, payload)
            if as_json:
                out.write(json.dumps({"topic": topic, "payload": payload}, sort_keys=True) + "\n")
                out.flush()
                continue
            dirty = True
            now = time.monotonic()
            if now - last_render >= refresh_s:
                render()
                last_render, dirty = now, False
        if dirty and not as_json:
            render()
    return EXIT_OK


# ---------------------------------------------------------------------- lab


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def record_cmd(
    endpoint: str,
    topics: Sequence[str],
    output: str | None,
    duration_s: float | None,
    timeout_s: float,
    server_key: str | None,
    client_keys: tuple[str, str] | None,
    err: TextIO,
) -> int:
    """``bptctl record``: telemetry to a CSV file (bptd.lab.record) until Ctrl-C or
    ``--duration``."""
    from bptd.lab.record import TOPICS, RecordWriter, record

    if duration_s is not None and duration_s <= 0:
        print("bptctl: --duration must be > 0", file=err)
        return EXIT_USAGE
    path = output or f"bptd-record-{_stamp()}.csv"
    tty = err.isatty()

    def status(text: str) -> None:
        if tty:
            err.write(f"\rrecording {path}: {text}\x1b[K")
            err.flush()

    with (
        Subscriber(endpoint, tuple(topics) or TOPICS, server_key=server_key,
                   client_keys=client_keys) as sub,
        RecordWriter(path) as writer,
    ):  # fmt: skip
        until = f" for {duration_s:g} s" if duration_s else "; Ctrl-C to stop"
        print(f"recording {endpoint} to {path}{until}", file=err)
        try:
            ok = record(sub, writer, duration_s, timeout_s, status)
        except KeyboardInterrupt:
            ok = True
        rows = writer.rows
    if tty:
        err.write("\n")
    if not ok:
        print(f"error {ErrorCode.TIMEOUT}: no telemetry from {endpoint} within {timeout_s} s "
              f"({rows} rows in {path})", file=err)  # fmt: skip
        return EXIT_NO_DAEMON
    print(f"{rows} rows in {path}", file=err)
    return EXIT_OK


def _progress_printer(err: TextIO) -> Callable[[Any], None]:
    """The progress line of ``bptctl pattern``: redrawn on a terminal, one line per step
    otherwise."""
    tty = err.isatty()
    shown = {"step": 0}

    def show(p: Any) -> None:
        measured = "-" if p.measured_w is None else _kw(p.measured_w)
        line = (f"step {p.step}/{p.steps}  setpoint {_kw(p.setpoint_w)}  measured {measured}"
                f"  elapsed {p.elapsed_s:.1f} s of {p.total_s:.0f} s")  # fmt: skip
        if tty:
            err.write("\r" + line + "\x1b[K")
            err.flush()
        elif p.step != shown["step"]:
            err.write(line + "\n")
            err.flush()
        shown["step"] = p.step

    return show


def pattern_cmd(args: argparse.Namespace, client_keys: tuple[str, str] | None,
                out: TextIO, err: TextIO) -> int:  # fmt: skip
    """``bptctl pattern a|b connector=NAME [key=value ...] [--output DIR]``."""
    from bptd.lab import runner

    if not args.args or args.args[0] not in ("a", "b"):
        print("bptctl: pattern needs the pattern: a or b, e.g. "
              "`bptctl pattern b connector=ccs`", file=err)  # fmt: skip
        return EXIT_USAGE
    kind = args.args[0]
    kv = parse_args_kv(args.args[1:])
    runner.check_args(kv)
    out_dir = args.output or f"bptd-pattern-{kind}-{kv['connector']}-{_stamp()}"
    tty = err.isatty()

    def notice(text: str) -> None:
        err.write(("\n" if tty else "") + f"bptctl: {text}\n")

    with (
        Client(args.control, timeout_s=args.timeout, server_key=args.server_key,
               client_keys=client_keys) as client,
        Subscriber(args.telemetry, (f"connector.{kv['connector']}", "module", "event"),
                   server_key=args.server_key, client_keys=client_keys) as sub,
    ):  # fmt: skip
        try:
            result = runner.run_and_report(kind, kv, client, sub, out_dir,
                                           _progress_printer(err), notice,
                                           telemetry_timeout_s=max(args.timeout, 1.0))  # fmt: skip
        except runner.PatternError as exc:
            print(f"bptctl: {exc}", file=err)
            return exc.exit_code
    if tty:
        err.write("\n")
    o = result.outcome
    if o.interrupted:
        print(f"bptctl: interrupted at step {o.steps_done}; setpoint back to 0", file=err)
    elif o.error:
        print(f"bptctl: {o.error}", file=err)
    report_md = result.files.get("report.md")
    if args.json:
        print(json.dumps({"summary": result.summary, "exit_code": o.exit_code,
                          "files": {k: str(v) for k, v in result.files.items()}},
                         indent=2, sort_keys=True), file=out)  # fmt: skip
    elif report_md is not None and report_md.exists():
        print(report_md.read_text(encoding="utf-8"), file=out)
    names = ", ".join(sorted(p.name for p in result.files.values()))
    print(f"wrote {out_dir}: {names}", file=err)
    return o.exit_code


def report_cmd(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``bptctl report SOURCE... [connector=NAME] [--output DIR]``: re-analyse recordings
    (a ``bptctl pattern`` directory or a ``bptctl record`` CSV); with several, one steps
    table and one efficiency heatmap over all of them."""
    from pathlib import Path

    from bptd.lab import metrics, report, runner
    from bptd.lab.record import load

    sources = [a for a in args.args if "=" not in a]
    kv = parse_args_kv([a for a in args.args if "=" in a])
    unknown = sorted(set(kv) - {"connector", *runner.ANALYSIS_KEYS})
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for report")
    if not sources:
        raise ValueError("report needs one or more recordings (a pattern directory or a CSV)")
    options = runner.analysis_options(kv)
    analyses, recs = [], []
    for src in sources:
        path = Path(src)
        if path.is_dir():
            path = path / "recording.csv"
        if not path.is_file():
            raise ValueError(f"no recording at {path}")
        rec = load(path)
        connector = kv.get("connector")
        if connector is None:
            if len(rec.connectors) != 1:
                raise ValueError(f"{path} has connectors {', '.join(sorted(rec.connectors))}:"
                                 " name one with connector=NAME")  # fmt: skip
            connector = next(iter(rec.connectors))
        analyses.append(metrics.analyse(rec, str(connector), options))
        recs.append(rec)
    out_dir = args.output or f"bptd-report-{_stamp()}"
    files = report.write_report(analyses, recs, out_dir, "bptd lab report")
    if args.json:
        print(json.dumps([report.summary(a) | {"source": a.source} for a in analyses],
                         indent=2, sort_keys=True), file=out)  # fmt: skip
    else:
        print(files["report.md"].read_text(encoding="utf-8"), file=out)
    print(f"wrote {out_dir}: {', '.join(sorted(p.name for p in files.values()))}", file=err)
    return EXIT_OK


# ---------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bptctl",
        description="Command line for the bptd API.",
        epilog="commands: every API command (status, setpoint, sim, ...), 'sessions' "
        "(a table of the recorded sessions), 'watch [topics...]' (live telemetry), "
        "'record [topics...]' (telemetry to CSV), 'pattern a|b connector=NAME [key=value...]' "
        "(thesis test patterns with metrics and plots) and 'report SOURCE...' (re-analyse "
        "recordings); see docs/lab.md.",
    )
    p.add_argument("--control", default=DEFAULT_CONTROL, help="command socket endpoint")
    p.add_argument("--telemetry", default=DEFAULT_TELEMETRY, help="telemetry socket endpoint")
    p.add_argument("--json", action="store_true", help="machine output (the reply's result)")
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for a reply (watch: for the next message)",
    )
    p.add_argument(
        "--server-key",
        metavar="KEY",
        help="the server's CURVE public key (Z85 or a .key file), for tcp:// endpoints",
    )
    p.add_argument(
        "--client-key",
        metavar="KEY",
        help="this client's CURVE secret key (Z85 or a .key_secret file), when the server "
        "accepts listed clients only; default: a fresh key",
    )
    p.add_argument("--count", type=int, help="watch: exit after this many messages")
    p.add_argument(
        "--output",
        metavar="PATH",
        help="record: the CSV file; pattern, report: the directory of the results",
    )
    p.add_argument("--duration", type=float, metavar="S", help="record: stop after S seconds")
    p.add_argument(
        "command",
        help="API command (status, setpoint, sim, ...), sessions, watch, record, pattern or report",
    )
    p.add_argument("args", nargs="*", help="key=value arguments (watch: topics)")
    return p


def _client_keys(secret: str | None) -> tuple[str, str] | None:
    if not secret:
        return None
    from bptd.api.security import load_key

    key = load_key(secret, "client key", secret=True)
    return zmq.curve_public(key.encode()).decode(), key


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    if args.count is not None and args.count < 1:
        print("bptctl: --count must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    lab = {"record": ("output", "duration"), "pattern": ("output",), "report": ("output",)}
    for option in ("output", "duration"):
        if getattr(args, option) is not None and option not in lab.get(args.command, ()):
            print(f"bptctl: --{option} is not an option of {args.command}", file=sys.stderr)
            return EXIT_USAGE
    try:
        client_keys = _client_keys(args.client_key)
        if args.command == "record":
            return record_cmd(
                args.telemetry,
                args.args,
                args.output,
                args.duration,
                args.timeout,
                args.server_key,
                client_keys,
                sys.stderr,
            )
        if args.command == "pattern":
            return pattern_cmd(args, client_keys, sys.stdout, sys.stderr)
        if args.command == "report":
            return report_cmd(args, sys.stdout, sys.stderr)
        if args.command == "watch":
            return watch(
                args.telemetry,
                args.args,
                args.timeout,
                args.count,
                args.json,
                args.server_key,
                client_keys,
                sys.stdout,
            )
        kv = parse_args_kv(args.args)
        with Client(
            args.control,
            timeout_s=args.timeout,
            server_key=args.server_key,
            client_keys=client_keys,
        ) as client:
            result = client.call(args.command, **kv)
    except (ValueError, ConfigError) as exc:
        print(f"bptctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except zmq.ZMQError as exc:  # an endpoint ZeroMQ cannot parse or reach
        print(f"bptctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_NO_DAEMON if exc.code == ErrorCode.TIMEOUT else EXIT_REFUSED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(human_output(args.command, result))
    return EXIT_OK
