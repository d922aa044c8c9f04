"""The daemon's command socket against 100 000 malformed and random requests.

Not JSON, random binary, JSON that is not an object, objects without a ``cmd`` or with one
of the wrong type, unknown commands, every real command (as ``commands`` lists them) with
missing, wrong-typed, huge, negative, non-finite (the ``NaN`` / ``Infinity`` tokens),
nested-junk and unknown arguments, very long strings, deep nesting, empty frames and wrong
multipart shapes. No request is a valid state-changing command: each one carries at least
one defect (a connector, module or contactor configuration that does not exist counts).

Every request must get exactly one reply, in order, shaped like the request's envelope: a
JSON object with ``ok`` false, a client error code (never ``internal``) and the request's
``id`` when the request could be parsed. Afterwards the daemon answers ``ping``, its
``status`` and the virtual station are as before, and its loop never failed.

What ZeroMQ itself does not let reach the daemon, so no reply can exist:

- a message of zero frames: a DEALER has nothing to send (``send_multipart([])`` fails in
  the client);
- a frame larger than the command socket's ``MAXMSGSIZE`` (1 MiB): libzmq drops the
  connection of the peer that sent it (see ``test_an_oversized_frame_costs_only_its_sender``).
"""

from __future__ import annotations

import copy
import json
import math
import random
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
from tests.daemon.helpers import json_key

from bptd.api.client import Client
from bptd.api.protocol import MAX_REQUEST_BYTES
from bptd.config import Config
from bptd.daemon.app import Daemon, DaemonOptions
from bptd.sim.station import FAULT_KINDS

N_REQUESTS = 100_000
BATCH = 500
SEED = 0x15118
BOOT_TIMEOUT_S = 30.0
BATCH_TIMEOUT_S = 60.0

REFUSALS = frozenset(
    {"bad_request", "unknown_command", "invalid_argument", "out_of_range", "wrong_state",
     "not_allowed"}
)  # fmt: skip
SIM_ACTIONS = ("plug", "unplug", "set_soc", "ev", "fault", "clear_fault", "status")
#: request / reply bodies left out of failure messages beyond this many characters
SHOWN = 300
#: nesting up to this depth must be read like any request (its id echoed); deeper, a
#: refusal without reading it (bad_request, id null) is as good
MAX_CLEAN_DEPTH = 16


def depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0)."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


# ---------------------------------------------------------------------- the daemon
@pytest.fixture
def daemon(station_config: Config, tmp_path: Path) -> Iterator[Daemon]:
    """The daemon on its in-process virtual station, no virtual EVCC (nothing moves)."""
    opts = DaemonOptions(
        sim=True,
        control=f"ipc://{tmp_path}/control.sock",
        telemetry=f"ipc://{tmp_path}/telemetry.sock",
        records_dir=str(tmp_path / "records"),
        evcc=False,
    )
    d = Daemon(station_config, opts).start_thread()
    try:
        assert d.ready.wait(BOOT_TIMEOUT_S), "daemon not ready"
        yield d
    finally:
        d.stop_thread()


@pytest.fixture
def dealer(daemon: Daemon) -> Iterator[zmq.Socket[bytes]]:
    """A raw DEALER on the daemon's command socket, without high-water marks."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(daemon.control)
    try:
        yield sock
    finally:
        sock.close(0)


#: fields of ``status`` that move on their own (clocks, counters, bus traffic)
VOLATILE = (
    ("station", "uptime_s"),
    ("station", "bus", "load_percent"),
    ("station", "bus_load_percent"),
    ("station", "loop", "ticks"),
)


def stable_status(status: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(status)
    for path in VOLATILE:
        node = out
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    for c in out["connectors"].values():
        del c["ev"]["age_s"]
    return out


def stable_sim(daemon: Daemon) -> dict[str, Any]:
    snap = dict(daemon.sim.snapshot())
    del snap["t"]
    return snap


def loop_alive(daemon: Daemon) -> bool:
    thread = daemon._thread
    return thread is not None and thread.is_alive()


# ---------------------------------------------------------------------- requests
@dataclass(frozen=True)
class Case:
    frames: list[bytes]  # what the DEALER sends
    rid: Any  # the id the reply must carry
    what: str  # "<kind>: <detail>", the kind a command name or a kind of junk
    rid_or_null: bool = False  # deeply nested: the server may also refuse it unread (id null)

    @property
    def delimited(self) -> bool:
        """Whether the server sees a REQ-style envelope (and so replies with one)."""
        return len(self.frames) >= 2 and self.frames[0] == b""


class Fuzzer:
    """Requests that must all be refused, from one seeded ``random.Random``."""

    def __init__(
        self,
        rng: random.Random,
        commands: dict[str, Any],
        modules: set[int],
        configurations: set[int],
    ) -> None:
        self.rng = rng
        self.commands = commands
        self.names = sorted(commands)
        self.absent_modules = sorted(set(range(1, 65)) - modules)
        self.absent_configurations = sorted(set(range(1, 256)) - configurations)
        self.n = 0

    # ------------------------------------------------------------------ values
    def token(self, lo: int = 1, hi: int = 12) -> str:
        alphabet = string.ascii_letters + string.digits + "_-. /\\\x00\u00e9\u2603\U0001f50c"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(lo, hi)))

    def long_string(self) -> str:
        return self.rng.choice("xy\u2603") * self.rng.choice((1000, 10_000, 30_000))

    def scalar(self) -> Any:
        rng = self.rng
        pool: tuple[Any, ...] = (
            None, True, False, 0, 1, -1, 7, 2**31, 2**53 + 1, -(2**63), 10**30, -(10**30),
            10**400, -(10**400), 0.5, -0.0, 1e-320, 1e308, -1e308, 1.7976931348623157e308,
            math.nan, math.inf, -math.inf, "", "0", "1e3", "true", "null", "NaN", "ccs",
            "chademo", "ccs\x00", "\u2603", "\ud800", "\x00\x01\x02",
        )  # fmt: skip
        r = rng.random()
        if r < 0.75:
            return rng.choice(pool)
        if r < 0.97:
            return self.token()
        return self.long_string()

    def junk(self, depth: int = 3) -> Any:
        r = self.rng.random()
        if depth <= 0 or r < 0.6:
            return self.scalar()
        if r < 0.8:
            return [self.junk(depth - 1) for _ in range(self.rng.randint(0, 4))]
        return {self.key(): self.junk(depth - 1) for _ in range(self.rng.randint(0, 4))}

    def nested(self, depth: int) -> Any:
        """A container exactly ``depth`` levels deep (lists and objects in turn)."""
        value: Any = self.scalar()
        for level in range(depth):
            value = [value] if level % 2 else {"k": value}
        return value

    def key(self) -> str:
        """An argument name no command and no sim action takes."""
        rng = self.rng
        r = rng.random()
        if r < 0.7:
            return "x_" + self.token()
        return rng.choice(
            ("", " ", "\u00e9\u2603", "x_" + "k" * 3000, "connector\x00", "CONNECTOR",
             "Connector", " connector", "power-w", "0", "__class__", "__dict__")
        )  # fmt: skip

    def request_id(self) -> tuple[bool, Any]:
        """(has an id, the id)."""
        rng = self.rng
        r = rng.random()
        if r < 0.45:
            return True, f"q{self.n}"
        if r < 0.65:
            return True, self.n
        if r < 0.85:
            return True, self.junk(2)
        return False, None

    # ------------------------------------------------------------------ framing
    def framed(self, body: bytes, rid: Any, what: str, rid_or_null: bool = False) -> Case:
        frames = [b"", body] if self.rng.random() < 0.5 else [body]
        return Case(frames, rid, what, rid_or_null)

    def encoded(self, obj: Any, what: str) -> Case:
        """``obj`` as one JSON frame; the expected id follows from what the server can parse."""
        try:
            body = json.dumps(obj, allow_nan=False).encode()
            parsable = True
        except ValueError:  # NaN / Infinity inside: written as the bare tokens
            body = json.dumps(obj, allow_nan=True).encode()
            parsable = False
        if len(body) > MAX_REQUEST_BYTES:
            parsable = False
        rid = obj.get("id") if parsable and isinstance(obj, dict) else None
        return self.framed(body, rid, what, rid_or_null=depth(obj) > MAX_CLEAN_DEPTH)

    # ------------------------------------------------------------------ kinds
    def case(self) -> Case:
        self.n += 1
        r = self.rng.random()
        if r < 0.08:
            return self.raw()
        if r < 0.13:
            return self.not_an_object()
        if r < 0.22:
            return self.bad_cmd()
        if r < 0.32:
            return self.unknown_command()
        if r < 0.95:
            return self.real_command()
        return self.wrong_shape()

    def raw(self) -> Case:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return self.framed(rng.randbytes(rng.randint(0, 256)), None, "raw: binary")
        if r < 0.5:
            text = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 200)))
            return self.framed(text.encode(), None, "raw: printable")
        if r < 0.7:
            whole = json.dumps({"cmd": rng.choice(self.names), "id": self.n}).encode()
            return self.framed(whole[: rng.randrange(len(whole))], None, "raw: truncated")
        fixed = (
            b"",
            b" \t\r\n",
            b"{",
            b"}",
            b"null",
            b'{"cmd":"\xff\xfe"}',
            b'{"cmd":"ping"} x',
            b'{"cmd":"ping"}{"cmd":"ping"}',
            b"{'cmd': 'ping'}",
            b'{"cmd":"ping", /* comment */ "id": 1}',
            b'{"cmd":"setpoint","connector":"ccs","power_w":NaN}',
            b'{"cmd":"setpoint","connector":"ccs","power_w":Infinity}',
            b'{"cmd":"setpoint","connector":"ccs","power_w":-Infinity}',
            b'{"cmd":"ping","id":NaN}',
            b'{"cmd":"ping","id":' + b"9" * 5000 + b"}",
            b"\xef\xbb\xbf" + b'{"cmd":"ping","x_bom":1}',
            '{"cmd":"x_utf16"}'.encode("utf-16"),
            b"[" * 5000 + b"]" * 5000,
            b'{"cmd":"ping","x":' + b"[" * 3000 + b"]" * 3000 + b"}",
            b'{"cmd":"setpoint","id":' + b"{" * 3000 + b"}" * 3000 + b"}",
        )
        if rng.random() < 0.01:  # above the request size limit, below the socket's
            body = b" " * (MAX_REQUEST_BYTES + rng.randint(1, 200_000)) + b'{"cmd":"x_big"}'
            return self.framed(body, None, "raw: oversized")
        return self.framed(rng.choice(fixed), None, "raw: fixed junk")

    def not_an_object(self) -> Case:
        value = self.rng.choice(
            ([{"cmd": "ping"}], "ping", '{"cmd": "ping"}', 1, None, True, [], 1e308,
             self.junk(3), [self.junk(2)])
        )  # fmt: skip
        if isinstance(value, dict):
            value = [value]
        return self.encoded(value, "not an object:")

    def bad_cmd(self) -> Case:
        obj: dict[str, Any] = {self.key(): self.junk(2) for _ in range(self.rng.randint(0, 3))}
        has_id, rid = self.request_id()
        if has_id:
            obj["id"] = rid
        if self.rng.random() < 0.8:
            obj["cmd"] = self.rng.choice(
                (None, 0, 1.5, True, False, "", [], ["ping"], {"cmd": "ping"}, 10**30, -0.0)
            )
        return self.encoded(obj, "bad cmd:")

    def unknown_command(self) -> Case:
        rng = self.rng
        name = rng.choice(self.names)
        cmd = rng.choice(
            (name.upper(), name + " ", " " + name, name[:-1], name + "\x00", name + "s",
             "x_" + self.token(), "cmd", "id", "\u2603", "p" * 50_000, self.token(1, 40))
        )  # fmt: skip
        if cmd in self.commands:
            cmd = "x_" + cmd
        obj: dict[str, Any] = {"cmd": cmd}
        has_id, rid = self.request_id()
        if has_id:
            obj["id"] = rid
        for _ in range(rng.randint(0, 3)):
            obj[rng.choice(("connector", "power_w", "n", self.key()))] = self.junk(2)
        return self.encoded(obj, f"unknown command: {cmd[:40]!r}")

    def wrong_shape(self) -> Case:
        rng = self.rng
        body = json.dumps(
            rng.choice(({"cmd": "ping"}, {"cmd": "status"}, {"cmd": "sessions"}, {"x": 1}))
        ).encode()
        shapes = (
            [b""],
            [b"", b""],
            [b"", b"", b""],
            [body, b""],
            [body, body],
            [body, body, body],
            [b"", body, b""],
            [b"", body, body, body],
            [b"", b"", body],
            [b"x", b"", body],
            [rng.randbytes(8), body],
        )
        frames = list(rng.choice(shapes))
        return Case(frames, None, f"shape: {len(frames)} frames")

    # ------------------------------------------------------------------ real commands
    def plausible(self, name: str, arg: dict[str, Any]) -> Any:
        """A value this argument would accept (the request stays invalid elsewhere)."""
        rng = self.rng
        kind = arg["type"]
        if kind == "str":
            if "choices" in arg:
                return rng.choice(arg["choices"])
            return rng.choice(("ccs", "chademo")) if name == "connector" else self.token()
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "int":
            lo = int(arg.get("min", 0))
            return rng.randint(lo, int(min(arg.get("max", lo + 3), lo + 3)))
        if kind == "int_list":
            return rng.choice(([1, 2], [1], [2], [2, 1]))
        if kind == "number":
            lo, hi = float(arg.get("min", -1000.0)), float(arg.get("max", 1000.0))
            return round(rng.uniform(lo, hi), 1)
        return self.junk(2)

    def wrong_type(self, arg: dict[str, Any]) -> Any:
        kind = arg["type"]
        pools: dict[str, tuple[Any, ...]] = {
            "str": (0, 1.5, True, [], {}, ["ccs"], {"connector": "ccs"}),
            "number": ("1", "ccs", "NaN", True, False, [], {}, [1], {"v": 1}),
            "int": ("1", True, False, 1.5, -0.5, 2.000001, [], {}, [1]),
            "bool": (0, 1, 1.0, "true", "false", [], {}, [True]),
            "int_list": ("1,2", 1, {"0": 1}, True, [1, "2"], [1.5], [True], [None], [[1]],
                         list(range(1, 66))),
        }  # fmt: skip
        pool = pools.get(kind, (0,))
        if not arg.get("nullable"):
            pool = (*pool, None)
        return self.rng.choice(pool)

    def out_of_range(self, arg: dict[str, Any]) -> Any:
        rng = self.rng
        kind = arg["type"]
        if kind == "str":
            return rng.choice(("", "PARALLEL", "series ", "x_" + self.token(), "\u2603"))
        if kind == "int_list":
            return rng.choice(([0], [65], [-1], [1, 10**30], [1e308], [1, 2, -(10**400)]))
        lo, hi = arg.get("min"), arg.get("max")
        pool: list[Any] = [1e308, -1e308, 10**30, -(10**30), 2**53 + 1, -(2**53) - 1,
                           10**400, -(10**400), 1.7976931348623157e308]  # fmt: skip
        if hi is not None:
            pool += [hi + 1, hi * 10 + 1]
        if lo is not None:
            pool += [lo - 1, lo - 1e-9 if kind == "number" else lo - 1]
        lo_f = -math.inf if lo is None else lo
        hi_f = math.inf if hi is None else hi
        return rng.choice([v for v in pool if not lo_f <= v <= hi_f])

    def absent_connector(self) -> str:
        return self.rng.choice(
            ("", "CCS", "ccs ", " ccs", "ccs\x00", "chademo2", "x_" + self.token(), "\u2603",
             "c" * 10_000, "ccs/../chademo", "ccs,chademo", "*")
        )  # fmt: skip

    def real_command(self) -> Case:
        rng = self.rng
        name = rng.choice(self.names)
        if name == "sim":
            return self.sim_command()
        spec: dict[str, Any] = self.commands[name]["arguments"]
        obj: dict[str, Any] = {"cmd": name}
        for arg, a in spec.items():
            if a["required"] or rng.random() < 0.4:
                obj[arg] = self.plausible(arg, a)
        # every mutation here refuses the request on its own
        mutations = ["extra", "nonfinite"]
        if any(a["required"] for a in spec.values()):
            mutations.append("missing")
        if spec:
            mutations += ["type", "nested"]
        if any("min" in a or "max" in a or "choices" in a or a["type"] == "int_list"
               for a in spec.values()):  # fmt: skip
            mutations.append("range")
        if "connector" in spec and (spec["connector"]["required"] or name == "status"):
            mutations += ["connector", "connector"]
        if name == "module":
            mutations += ["module", "module"]
        if name == "select_configuration":
            mutations += ["configuration", "configuration"]
        chosen = rng.sample(mutations, rng.randint(1, min(3, len(mutations))))
        for m in chosen:
            if m == "extra":
                obj[self.key()] = self.junk(2)
            elif m == "nonfinite":
                target = rng.choice([*spec, self.key()])
                obj[target] = rng.choice(
                    (math.nan, math.inf, -math.inf, [1, math.nan], {"v": -math.inf})
                )
            elif m == "missing":
                del_name = rng.choice([k for k, a in spec.items() if a["required"]])
                obj.pop(del_name, None)
            elif m == "type":
                target = rng.choice(list(spec))
                obj[target] = self.wrong_type(spec[target])
            elif m == "nested":
                obj[rng.choice(list(spec))] = self.nested(rng.randint(1, 40))
            elif m == "range":
                ranged = [k for k, a in spec.items()
                          if "min" in a or "max" in a or "choices" in a
                          or a["type"] == "int_list"]  # fmt: skip
                target = rng.choice(ranged)
                obj[target] = self.out_of_range(spec[target])
            elif m == "connector":
                obj["connector"] = self.absent_connector()
            elif m == "module":
                obj["n"] = rng.choice(self.absent_modules)
            elif m == "configuration":
                obj["id"] = rng.choice(self.absent_configurations)
        if "id" not in spec:  # select_configuration: `id` is its argument
            has_id, rid = self.request_id()
            if has_id:
                obj["id"] = rid
        return self.encoded(obj, f"{name}: {'+'.join(chosen)}")

    def sim_command(self) -> Case:
        """``sim``: its arguments are the action's; a bad action or an unknown argument."""
        rng = self.rng
        obj: dict[str, Any] = {"cmd": "sim"}
        r = rng.random()
        if r < 0.3:
            obj["action"] = rng.choice(("", "PLUG", "plug ", "reboot", "x_" + self.token()))
            what = "unknown action"
        elif r < 0.45:
            obj["action"] = rng.choice((1, None, [], {}, True, ["plug"], {"plug": 1}))
            what = "action of a wrong type"
        elif r < 0.5:
            what = "no action"
        else:
            obj["action"] = rng.choice(SIM_ACTIONS)
            obj[self.key()] = self.junk(2)  # an argument no action takes: nothing runs
            what = f"{obj['action']} with an unknown argument"
        for _ in range(rng.randint(0, 3)):
            arg = rng.choice(
                ("connector", "vehicle", "module", "kind", "soc", "cp", "contactors", "temp_c")
            )
            obj[arg] = rng.choice(
                (rng.choice(("ccs", "chademo", "bpt", "B", "C")), rng.choice(FAULT_KINDS),
                 rng.randint(1, 3), self.junk(2))
            )  # fmt: skip
        has_id, rid = self.request_id()
        if has_id:
            obj["id"] = rid
        return self.encoded(obj, f"sim: {what}")


# ---------------------------------------------------------------------- checking
def check_reply(case: Case, frames: list[bytes]) -> str | None:
    """What is wrong with ``frames`` as the reply to ``case`` (None: nothing)."""
    want = 2 if case.delimited else 1
    if len(frames) != want or (want == 2 and frames[0] != b""):
        return f"reply envelope {frames[:-1]!r}, expected {want} frame(s)"
    try:
        reply = json.loads(frames[-1])
    except ValueError:
        return "reply is not JSON"
    if not isinstance(reply, dict) or reply.get("ok") is not False:
        return "not a refusal"
    error = reply.get("error")
    if not isinstance(error, dict) or error.get("code") not in REFUSALS:
        return f"error code {error.get('code') if isinstance(error, dict) else error!r}"
    if not isinstance(error.get("message"), str) or not error["message"]:
        return "no error message"
    if json_key(reply.get("id")) != json_key(case.rid) and not (
        case.rid_or_null and reply.get("id") is None
    ):
        return f"id {str(reply.get('id'))[:80]!r}, expected {str(case.rid)[:80]!r}"
    return None


def show(case: Case, frames: list[bytes] | None = None) -> str:
    text = f"[{case.what}] " + " | ".join(repr(f[:SHOWN]) for f in case.frames)
    if frames is not None:
        text += f"\n    -> {frames[-1][:SHOWN]!r}"
    return text


def test_100000_malformed_requests_are_each_refused_once_and_change_nothing(
    daemon: Daemon, dealer: zmq.Socket[bytes], reference_config: Config
) -> None:
    with Client(daemon.control, timeout_s=10.0) as client:
        commands = client.call("commands")
        reference = stable_status(client.call("status"))
        sessions = client.call("sessions")["sessions"]
    sim_before = stable_sim(daemon)
    assert reference["station"]["nodes_operational"] == reference["station"]["nodes_total"]
    assert "sim" in commands and len(commands) >= 20

    fuzzer = Fuzzer(
        random.Random(SEED),
        commands,
        modules={m.n for m in reference_config.modules},
        configurations={c.id for c in reference_config.contactor_configurations},
    )
    poller = zmq.Poller()
    poller.register(dealer, zmq.POLLIN)
    problems: list[str] = []
    kinds: dict[str, int] = {}
    sent = 0
    started = time.monotonic()
    while sent < N_REQUESTS:
        batch = [fuzzer.case() for _ in range(min(BATCH, N_REQUESTS - sent))]
        for case in batch:
            dealer.send_multipart(case.frames)
        deadline = time.monotonic() + BATCH_TIMEOUT_S
        for i, case in enumerate(batch):
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                pytest.fail(
                    f"no reply to request {sent + i} within {BATCH_TIMEOUT_S} s of its batch "
                    f"(loop alive: {loop_alive(daemon)}): {show(case)}"
                )
            frames = dealer.recv_multipart()
            problem = check_reply(case, frames)
            if problem is not None and len(problems) < 20:
                problems.append(f"request {sent + i}: {problem}: {show(case, frames)}")
            kind = case.what.split(":")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        sent += len(batch)
    elapsed = time.monotonic() - started
    assert not problems, "\n".join(problems)
    assert elapsed < 120, f"{N_REQUESTS} requests took {elapsed:.0f} s"

    # exactly one reply each: the next reply on this socket is the next request's
    dealer.send_multipart([b"", b'{"cmd": "ping", "id": "after"}'])
    assert poller.poll(10_000), "no reply to the ping after the requests"
    after = json.loads(dealer.recv_multipart()[-1])
    assert after["id"] == "after" and after["ok"] is True, after

    assert loop_alive(daemon)
    with Client(daemon.control, timeout_s=10.0) as client:
        assert client.call("ping")["pong"] is True
        assert stable_status(client.call("status")) == reference
        assert client.call("sessions")["sessions"] == sessions
    assert stable_sim(daemon) == sim_before
    assert daemon.loop is not None and daemon.loop.tick_errors == 0
    # every command was sent, and every kind of junk
    junk = {"raw", "not an object", "bad cmd", "unknown command", "shape"}
    assert set(kinds) == set(commands) | junk, sorted(kinds)
    assert min(kinds.values()) >= 500, kinds


WEIRD_IDS: tuple[Any, ...] = (
    None, 0, -1, 2**53 + 1, 10**30, -(10**30), 1.5, -0.0, 1e308, 5e-324, True, False, "",
    "x" * 20_000, "\u2603\U0001f50c\x00", "\ud800", [], {}, [1, "a", None],
    {"a": [1, {"b": None}], "c": {"d": [[], {}]}}, {"cmd": "stop", "connector": "ccs"},
    [[[[[[[[[[[[["deep"]]]]]]]]]]]]],
)  # fmt: skip


@pytest.mark.parametrize(
    "request_body",
    [{"cmd": "ping"}, {"cmd": "x_nope"}, {}, {"cmd": 5}, {"cmd": "status", "connector": "x_"}],
    ids=["ok", "unknown_command", "no cmd", "cmd not a string", "invalid_argument"],
)
def test_the_reply_echoes_the_request_id(daemon: Daemon, request_body: dict[str, Any]) -> None:
    with Client(daemon.control, timeout_s=10.0) as client:
        for rid in WEIRD_IDS:
            # Client.request returns only the reply whose id is the request's (or times out)
            reply = client.request({**request_body, "id": rid})
            assert json_key(reply["id"]) == json_key(rid)
            assert reply["ok"] is (request_body == {"cmd": "ping"})
            if not reply["ok"]:
                assert reply["error"]["code"] in REFUSALS
        no_id = client.request({**request_body})  # the client numbers it
        assert isinstance(no_id["id"], int)
    with zmq.Context.instance().socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(daemon.control)
        sock.send_multipart([b"", json.dumps(request_body).encode()])
        assert sock.poll(10_000)
        assert json.loads(sock.recv_multipart()[-1])["id"] is None  # no id: null


def test_an_oversized_frame_costs_only_its_sender(
    daemon: Daemon, dealer: zmq.Socket[bytes]
) -> None:
    """Above MAXMSGSIZE libzmq drops the sender's connection; everybody else is served."""
    with Client(daemon.control, timeout_s=10.0) as client:
        reference = stable_status(client.call("status"))
        dealer.send_multipart([b"", b" " * (2 << 20) + b'{"cmd": "ping"}'])
        for _ in range(20):
            assert client.call("ping")["pong"] is True
        assert stable_status(client.call("status")) == reference
    # the dropped DEALER reconnects by itself and is served again
    dealer.send_multipart([b"", b'{"cmd": "ping", "id": 1}'])
    assert dealer.poll(10_000), "the DEALER was not served after its reconnect"
    assert json.loads(dealer.recv_multipart()[-1])["id"] == 1
    assert loop_alive(daemon)
    assert daemon.loop is not None and daemon.loop.tick_errors == 0


def _nested_text(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize("depth", [100, 300, 500, 700, 900, 990])
def test_deep_nesting_below_the_parser_limit_is_answered(daemon: Daemon, depth: int) -> None:
    """Nesting the JSON parser accepts must not break the reply (nor the loop) later on."""
    nested = _nested_text(depth)
    bodies = (
        b'{"cmd": "x_nope", "id": ' + nested + b"}",
        b'{"cmd": 5, "id": ' + nested + b"}",
        b'{"cmd": "ping", "id": ' + nested + b"}",
        b'{"cmd": "ping", "x": ' + nested + b"}",
        b'{"cmd": ' + nested + b"}",
        b'{"cmd": "setpoint", "connector": "ccs", "power_w": ' + nested + b"}",
        b'{"cmd": "sim", "action": "x_nope", "x": ' + nested + b"}",
    )
    _each_answered(daemon, bodies)


def test_an_id_beyond_the_float_range_is_answered(daemon: Daemon) -> None:
    """``1e400`` is valid JSON; Python reads it as infinity, which JSON cannot carry back."""
    bodies = (
        b'{"cmd": "ping", "id": 1e400}',
        b'{"cmd": "ping", "id": [1, -1e400]}',
        b'{"cmd": "x_nope", "id": 1e400}',
        b'{"cmd": "status", "connector": "x_", "id": {"a": 1e400}}',
    )
    _each_answered(daemon, bodies)


@pytest.mark.parametrize("argument", ["self", "name"])
def test_sim_arguments_named_like_the_dispatchers_own_are_refused(
    daemon: Daemon, argument: str
) -> None:
    bodies = tuple(
        json.dumps({"cmd": "sim", "action": action, argument: 1}).encode() for action in SIM_ACTIONS
    )
    _each_answered(daemon, bodies, may_succeed=False)


def _each_answered(daemon: Daemon, bodies: tuple[bytes, ...], may_succeed: bool = True) -> None:
    """One reply to each body in turn: a result (when ``may_succeed``) or a refusal."""
    with zmq.Context.instance().socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(daemon.control)
        for body in bodies:
            sock.send_multipart([b"", body])
            deadline = time.monotonic() + 10.0
            while not sock.poll(100):
                assert loop_alive(daemon), f"the loop died on {body[:120]!r}"
                assert time.monotonic() < deadline, f"no reply to {body[:120]!r}"
            reply = json.loads(sock.recv_multipart()[-1])
            assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
            assert may_succeed or reply["ok"] is False, (body[:120], reply)
            if not reply["ok"]:
                assert reply["error"]["code"] in REFUSALS, (body[:120], reply)
    assert loop_alive(daemon)
    with Client(daemon.control, timeout_s=10.0) as client:
        assert client.call("ping")["pong"] is True
    assert daemon.loop is not None and daemon.loop.tick_errors == 0
