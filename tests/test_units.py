"""The systemd units ship valid (`systemd-analyze verify`) and say what the service needs."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment, method-assign]
    cp.read(UNITS / name)
    return cp


@needs_systemd
@pytest.mark.parametrize("name", ["bptd.service", "bptd-can0-txqueue.service", "bptd-ocpp.service"])
def test_units_verify(name: str, tmp_path: Path) -> None:
    text = (UNITS / name).read_text()
    bptd = Path(sys.executable).with_name("bptd")
    text = text.replace("/usr/bin/bptd-ocpp", str(bptd.with_name("bptd-ocpp")))
    text = text.replace("/usr/bin/bptd", str(bptd))
    unit = tmp_path / name
    unit.write_text(text)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [ln for ln in r.stderr.splitlines() if str(unit) in ln or name in ln]
    assert r.returncode == 0 and not problems, r.stderr


def test_service_is_notify_with_a_watchdog_and_restart() -> None:
    s = _unit("bptd.service")["Service"]
    assert s["Type"] == "notify"
    assert s["WatchdogSec"] and s["Restart"] == "on-failure"
    assert "NUMBA_CACHE_DIR=/var/cache/bptd" in s["Environment"]
    assert s["CacheDirectory"] == "bptd" and s["StateDirectory"] == "bptd"
    assert "warm-cache" in (UNITS / "bptd.service").read_text()
    assert s["ProtectSystem"] == "strict" and s["NoNewPrivileges"] == "yes"
    assert "AF_CAN" in s["RestrictAddressFamilies"]


def test_can0_runs_at_500_kbit_with_bus_off_restart() -> None:
    n = _unit("bptd-can0.network")
    assert n["Match"]["Name"] == "can0"
    assert n["CAN"]["BitRate"] == "500000"
    assert n["CAN"]["RestartSec"].endswith("ms")


def test_service_runs_the_daemon_on_the_example_config() -> None:
    s = _unit("bptd.service")["Service"]
    assert s["ExecStart"] == "/usr/bin/bptd run --config /etc/bptd/bptd.toml"
    r = subprocess.run(
        [sys.executable, "-m", "bptd.cli", "check-config", "--config",
         str(UNITS / "bptd.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
