"""``bptctl``: every API command from the shell.

    bptctl status
    bptctl setpoint connector=ccs power_w=-5000
    bptctl --control ipc:///run/bptd/sim.sock sim action=plug connector=ccs vehicle=bpt
    bptctl --json status | jq .connectors

Arguments are ``key=value``; a value is read as JSON when it parses (numbers, true/false,
null, lists, objects) and as a string otherwise. A refused request prints
``error <code>: <message>`` on stderr and exits 1; a daemon that does not answer exits 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from bptd.api.client import Client
from bptd.api.protocol import ApiError, ErrorCode

DEFAULT_CONTROL = "ipc:///run/bptd/control.sock"
DEFAULT_TELEMETRY = "ipc:///run/bptd/telemetry.sock"
EXIT_REFUSED, EXIT_USAGE, EXIT_NO_DAEMON = 1, 2, 3


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bptctl", description="Command line for the bptd API.")
    p.add_argument("--control", default=DEFAULT_CONTROL, help="command socket endpoint")
    p.add_argument("--telemetry", default=DEFAULT_TELEMETRY, help="telemetry socket endpoint")
    p.add_argument("--json", action="store_true", help="machine output (the reply's result)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply")
    p.add_argument("command", help="API command (status, setpoint, sim, ...)")
    p.add_argument("args", nargs="*", help="key=value arguments")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        kv = parse_args_kv(args.args)
    except ValueError as exc:
        print(f"bptctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with Client(args.control, timeout_s=args.timeout) as client:
        try:
            result = client.call(args.command, **kv)
        except ApiError as exc:
            print(f"error {exc.code}: {exc.message}", file=sys.stderr)
            return EXIT_NO_DAEMON if exc.code == ErrorCode.TIMEOUT else EXIT_REFUSED
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(_human(result))
    return 0
