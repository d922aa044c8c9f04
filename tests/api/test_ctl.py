"""bptctl against real ZeroMQ peers: watch, sessions, status, CURVE, ipc socket modes."""

from __future__ import annotations

import io
import json
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq

from bptd import ctl
from bptd.api.protocol import ApiError, ErrorCode
from bptd.api.security import CurveConfig
from bptd.api.server import CommandServer
from bptd.api.telemetry import Publisher
from bptd.records import SessionRecord

from .conftest import serving

CONNECTOR = {
    "connector": "ccs",
    "state": "energy_transfer",
    "fault": None,
    "voltage_v": 401.25,
    "current_a": -12.5,
    "power_w": -5015.6,
    "setpoint_w": -5000.0,
    "limits": {
        "charge_current_a": 62.5,
        "discharge_current_a": 50.0,
        "binding_charge": "soa_power",
        "binding_discharge": "ev",
    },
    "energy_import_wh": 120.0,
    "energy_export_wh": 33.3,
    "modules": [1],
}
MODULE = {
    "module": 1,
    "connector": "ccs",
    "dcdc_state": "running",
    "afe_state": "running",
    "online": True,
    "voltage_v": 401.2,
    "current_a": -12.5,
    "power_w": -5015.6,
    "ac_power_w": -4800.0,
    "temperature_c": 41.5,
    "derating": 1.0,
}
EVENT = {"kind": "state_change", "connector": "ccs", "text": "precharge -> energy_transfer"}
STATION = {"nodes": 6, "bus_load_percent": 12.5, "loop": {"period_ms": 10.0}}
TELEMETRY = [
    ("station", STATION),
    ("connector.ccs", CONNECTOR),
    ("connector.chademo", {"connector": "chademo", "state": "idle"}),
    ("module.1", MODULE),
    ("module.2", {"module": 2, "online": False}),
    ("event", EVENT),
]


@contextmanager
def publishing(ep: str, ctx: zmq.Context[Any]) -> Iterator[Publisher]:
    """A Publisher sending TELEMETRY over and over (until the block ends) from a thread."""
    pub = Publisher(ep, context=ctx)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.005):  # about the daemon's rate, and a subscriber can join
            for topic, payload in TELEMETRY:
                pub.publish(topic, payload)

    thread = threading.Thread(target=run, name="test-publisher")
    thread.start()
    try:
        yield pub
    finally:
        stop.set()
        thread.join(5.0)
        pub.close()


def test_watch_json_prints_one_line_per_message(
    ctx: zmq.Context[Any], ipc_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = f"ipc://{ipc_dir}/telemetry.sock"
    with publishing(ep, ctx):
        code = ctl.main(["--telemetry", ep, "watch", "--count", "7", "--json"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(out) == 7
    lines = [json.loads(line) for line in out]
    topics = {line["topic"] for line in lines}
    assert topics <= {t for t, _ in TELEMETRY} and len(topics) >= 2
    for line in lines:
        assert "t" in line["payload"] and "mono" in line["payload"]


def test_watch_topics_filter(
    ctx: zmq.Context[Any], ipc_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = f"ipc://{ipc_dir}/telemetry.sock"
    with publishing(ep, ctx):
        code = ctl.main(["--json", "--telemetry", ep, "watch", "module", "event", "--count", "9"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(lines) == 9
    assert {line["topic"] for line in lines} <= {"module.1", "module.2", "event"}


def test_watch_table_shows_connectors_modules_and_events(
    ctx: zmq.Context[Any], ipc_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = f"ipc://{ipc_dir}/telemetry.sock"
    with publishing(ep, ctx):
        code = ctl.main(["--telemetry", ep, "watch", "--count", str(3 * len(TELEMETRY))])
    out = capsys.readouterr().out
    assert code == 0
    assert "\x1b[" not in out  # not a terminal: plain blocks, no escape codes
    last = out.strip().split("\n\nbptd telemetry")[-1]
    assert "energy_transfer" in last and "chademo" in last
    assert "401.2 V" in last and "-12.5 A" in last and "-5.02 kW" in last
    assert "62.5 A (soa_power)" in last and "50.0 A (ev)" in last
    assert "120.0 Wh" in last and "33.3 Wh" in last
    assert "running/running" in last and "41.5 degC" in last
    assert "offline" in last  # module 2
    assert "bus load 12.5 %" in last
    assert "state_change  ccs  precharge -> energy_transfer" in last
    row = next(line for line in last.splitlines() if line.startswith("chademo"))
    assert row.split()[:3] == ["chademo", "idle", "-"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watch_on_a_terminal_redraws_in_place(ctx: zmq.Context[Any], ipc_dir: Path) -> None:
    ep = f"ipc://{ipc_dir}/telemetry.sock"
    term = FakeTerminal()
    with publishing(ep, ctx):
        code = ctl.watch(ep, [], 5.0, 2 * len(TELEMETRY), False, None, None, term)
    assert code == 0
    assert term.getvalue().startswith(ctl.CLEAR_HOME)
    assert term.getvalue().count(ctl.CLEAR_HOME) >= 1


def test_watch_without_telemetry_exits_3(ipc_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ep = f"ipc://{ipc_dir}/nobody.sock"
    assert ctl.main(["--telemetry", ep, "--timeout", "0.2", "watch"]) == 3
    assert capsys.readouterr().err.startswith("error timeout:")


RECORDS = [
    SessionRecord(
        session_id="0123456789abcdef",
        connector="ccs",
        started="2025-03-01T10:00:00.000Z",
        stopped="2025-03-01T10:30:00.000Z",
        reason="user",
        energy_import_wh=5000.0,
        energy_export_wh=1250.5,
    ),
    SessionRecord(
        session_id="fedcba9876543210",
        connector="chademo",
        started="2025-03-01T11:00:00.000Z",
        energy_import_wh=10.0,
    ),
]
STATUS = {
    "station": {"nodes": 6, "bus_load_percent": 10.0},
    "connectors": {
        "ccs": {
            "state": "energy_transfer",
            "fault": None,
            "allocation": {"modules": [1], "topology": "parallel"},
            "setpoint_w": 5000.0,
            "voltage_v": 400.0,
            "current_a": 12.5,
            "power_w": 5000.0,
            "limits": {"charge_current_a": 62.5, "binding_charge": "config"},
            "energy_import_wh": 42.0,
            "energy_export_wh": 0.0,
        },
        "chademo": {"state": "fault", "fault": "insulation_fault"},
    },
    "modules": {"2": {"online": False}, "1": {"connector": "ccs", "temperature_c": 35.0}},
}


def station_handler(request: dict[str, Any]) -> Any:
    if request["cmd"] == "sessions":
        limit = request.get("limit", len(RECORDS))
        return {"sessions": [r.as_dict() for r in RECORDS[:limit]]}
    if request["cmd"] == "status":
        return STATUS
    if request["cmd"] == "sim_status":
        return {"connectors": {"ccs": {"cp": "A"}}, "modules": {}}
    raise ApiError(ErrorCode.UNKNOWN_COMMAND, "no such command")


def test_sessions_prints_a_table(
    ctx: zmq.Context[Any], ipc_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = f"ipc://{ipc_dir}/control.sock"
    with serving(ep, station_handler, context=ctx):
        assert ctl.main(["--control", ep, "sessions"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split() == [
            "session",
            "connector",
            "started",
            "stopped",
            "reason",
            "energy",
            "in",
            "energy",
            "out",
        ]
        assert out[2].split() == [
            "01234567",
            "ccs",
            "2025-03-01T10:00:00.000Z",
            "2025-03-01T10:30:00.000Z",
            "user",
            "5000.0",
            "Wh",
            "1250.5",
            "Wh",
        ]
        assert out[3].split()[:5] == [
            "fedcba98",
            "chademo",
            "2025-03-01T11:00:00.000Z",
            "open",
            "-",
        ]
        assert ctl.main(["--control", ep, "sessions", "limit=1"]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 3
        assert ctl.main(["--control", ep, "sessions", "limit=0"]) == 0
        assert capsys.readouterr().out.strip() == "no sessions"
        assert ctl.main(["--control", ep, "--json", "sessions", "limit=1"]) == 0
        assert json.loads(capsys.readouterr().out)["sessions"][0]["session_id"] == (
            "0123456789abcdef"
        )


def test_status_prints_a_summary_and_other_results_a_dump(
    ctx: zmq.Context[Any], ipc_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = f"ipc://{ipc_dir}/control.sock"
    with serving(ep, station_handler, context=ctx):
        assert ctl.main(["--control", ep, "status"]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0] == "station: nodes 6, bus load 10.0 %"
        assert lines[2].split()[:2] == ["connector", "state"]
        ccs = next(line for line in lines if line.startswith("ccs"))
        assert "energy_transfer" in ccs and "5.00 kW" in ccs and "62.5 A (config)" in ccs
        assert "42.0 Wh" in ccs
        chademo = next(line for line in lines if line.startswith("chademo"))
        assert "fault: insulation_fault" in chademo
        module_rows = [line.split() for line in lines if line.strip()[:1] in ("1", "2")]
        assert [row[0] for row in module_rows] == ["1", "2"]  # sorted by number
        assert "35.0" in module_rows[0] and "offline" in module_rows[1]
        # a result of another shape (the sim socket's status) is dumped as it is
        assert ctl.main(["--control", ep, "sim_status"]) == 0
        assert capsys.readouterr().out.splitlines()[:3] == ["connectors:", "  ccs:", "    cp: A"]
        assert ctl.main(["--control", ep, "nothing"]) == 1
        assert capsys.readouterr().err.startswith("error unknown_command:")


def test_bptctl_over_tcp_with_a_server_key(
    ctx: zmq.Context[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server_pub, server_sec = zmq.auth.create_certificates(str(tmp_path), "server")
    client_pub, client_sec = zmq.auth.create_certificates(str(tmp_path), "client")
    public_b, secret_b = zmq.auth.load_certificate(server_sec)
    assert secret_b is not None
    public, secret = public_b.decode(), secret_b.decode()
    allowed = zmq.auth.load_certificate(client_pub)[0].decode()
    curve = CurveConfig(secret_key=secret, public_key=public, client_keys=(allowed,))
    with serving("tcp://127.0.0.1:*", station_handler, context=ctx, curve=curve) as server:
        ep = server.bound_endpoint
        args = ["--control", ep, "--server-key", server_pub, "--client-key", client_sec]
        assert ctl.main([*args, "--json", "sessions", "limit=1"]) == 0
        assert len(json.loads(capsys.readouterr().out)["sessions"]) == 1
        # no client key: a fresh one, not on the list
        assert (
            ctl.main(["--control", ep, "--server-key", public, "--timeout", "0.3", "status"]) == 3
        )
        assert ctl.main(["--control", ep, "--server-key", "nonsense", "status"]) == 2
        assert "server_key" in capsys.readouterr().err


def test_ipc_sockets_get_mode_0660_and_their_directory(
    ctx: zmq.Context[Any], ipc_dir: Path
) -> None:
    control = ipc_dir / "run" / "bptd" / "control.sock"
    telemetry = ipc_dir / "run" / "bptd" / "telemetry.sock"
    with (
        CommandServer(f"ipc://{control}", station_handler, context=ctx),
        Publisher(f"ipc://{telemetry}", context=ctx),
    ):
        for path in (control, telemetry):
            st = path.stat()
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == 0o660
    private = ipc_dir / "private.sock"
    with Publisher(f"ipc://{private}", context=ctx, mode=0o600):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
