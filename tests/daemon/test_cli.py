"""`bptd run` as a process: systemd notification, bptctl against it, orderly stop, and a
bad config refused with one message and exit code 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BPTCTL = str(Path(sys.executable).with_name("bptctl"))


def bptctl(tmp: Path, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BPTCTL, "--control", f"ipc://{tmp}/control.sock",
         "--telemetry", f"ipc://{tmp}/telemetry.sock", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def notifications(sock: socket.socket, until: str, timeout_s: float) -> list[dict[str, str]]:
    """Notify messages until one has the key ``until`` (or the time is up)."""
    out: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            break
        msg = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        out.append(msg)
        if until in msg:
            break
    return out


def test_bptd_run_notifies_systemd_serves_bptctl_and_stops_cleanly(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "400000"}  # fmt: skip
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bptd.cli", "run", "--sim",
         "--control", f"ipc://{tmp_path}/control.sock",
         "--telemetry", f"ipc://{tmp_path}/telemetry.sock",
         "--records", str(tmp_path / "records"), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        msgs = notifications(notify, "READY", 60.0)
        assert msgs and msgs[-1].get("READY") == "1", msgs
        assert "6/6 CANopen nodes operational" in msgs[-1]["STATUS"]
        # a healthy loop feeds the watchdog (at half its interval)
        pings = [m for m in notifications(notify, "WATCHDOG", 5.0) if m.get("WATCHDOG") == "1"]
        assert pings
        r = bptctl(tmp_path, "ping")
        assert r.returncode == 0 and "pong: True" in r.stdout, r.stderr
        r = bptctl(tmp_path, "--json", "status")
        status = json.loads(r.stdout)
        assert status["connectors"]["ccs"]["state"] == "idle"
        r = bptctl(tmp_path, "authorize", "connector=ccs")
        assert r.returncode == 1 and "wrong_state" in r.stderr
        r = bptctl(tmp_path, "watch", "--count", "3", "--json", "connector.ccs")
        assert r.returncode == 0, r.stderr
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        assert len(lines) == 3 and all(m["topic"] == "connector.ccs" for m in lines)
        r = bptctl(tmp_path, "sessions")
        assert r.returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stopping = notifications(notify, "STOPPING", 2.0)
        assert stopping and stopping[-1].get("STOPPING") == "1", stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        notify.close()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[station]\ncontrol_hz = -1\n", "control_hz"),
        ('[api]\ncontrol = "tcp://0.0.0.0:5555"\n', "CURVE"),
        ("[[connector]]\nname = 3\n", "connector"),
        ("this is not toml", "TOML"),
    ],
)
def test_a_bad_config_is_one_clear_message_and_exit_code_2(
    tmp_path: Path, text: str, words: str
) -> None:
    cfg = tmp_path / "bptd.toml"
    cfg.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "bptd.cli", "run", "--config", str(cfg),
         "--control", f"ipc://{tmp_path}/c.sock", "--telemetry", f"ipc://{tmp_path}/t.sock",
         "--records", str(tmp_path / "records")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("bptd: ") and words in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "records").exists()  # never a half start
