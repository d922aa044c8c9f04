"""bptd-ocpp's command line: bad options are exit code 2, one instance per state directory,
SIGTERM ends it also while it waits for bptd."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BASE = [sys.executable, "-m", "bptd.ocpp", "--station-id", "CS-1", "--ocpp-version", "2.1"]


def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--csms-url", "http://x/ocpp"], "ws:// or wss://"),
        (["--csms-url", "ws://x/ocpp", "--var", "Bogus=1"], "unknown variable"),
        (["--csms-url", "ws://x/ocpp", "--var", "MeterValueSampleInterval=-3"], "at least"),
        (["--csms-url", "ws://x/ocpp", "--control", "tcp://h"], "--telemetry"),
    ],
)
def test_bad_options_are_one_message_and_exit_code_2(
    args: list[str], says: str, tmp_path: Path
) -> None:
    r = run(*args, "--state-dir", str(tmp_path))
    assert r.returncode == 2 and says in r.stderr, r.stderr


def test_one_instance_per_state_directory_and_sigterm_while_waiting_for_bptd(
    tmp_path: Path,
) -> None:
    nobody = f"ipc://{tmp_path}/nobody/control.sock"  # no bptd there: it waits
    args = [*BASE, "--csms-url", "ws://127.0.0.1:9/ocpp", "--control", nobody,
            "--state-dir", str(tmp_path / "state"), "--log-format", "console"]  # fmt: skip
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "state" / "lock").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = run("--csms-url", "ws://127.0.0.1:9/ocpp", "--control", nobody,
                     "--state-dir", str(tmp_path / "state"))  # fmt: skip
        assert second.returncode == 2 and "in use" in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
