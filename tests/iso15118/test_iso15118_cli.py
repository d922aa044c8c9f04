"""bptd-iso15118's command line, its systemd unit, and what the bridge sends to bptd."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bptd.iso15118.bridge import Phase, clean

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "bptd-iso15118.service"


def test_ev_values_are_clamped_into_the_api_ranges_and_gaps_dropped() -> None:
    # the package's simulated EV announces 300 kA and 20 kV: the API would refuse them
    sent = clean({"max_discharge_current_a": 300000.0, "target_voltage_v": 20000.0,
                  "target_current_a": -5000.0, "soc": None, "max_voltage_v": float("nan"),
                  "contactors_closed": True})  # fmt: skip
    assert sent == {"max_discharge_current_a": 1000.0, "target_voltage_v": 1500.0,
                    "target_current_a": -1000.0, "contactors_closed": True}  # fmt: skip


def test_phases_are_the_api_phases_in_sequence_order() -> None:
    assert [p.value for p in Phase][:3] == ["none", "session_setup", "authorization"]
    assert list(Phase)[-1] is Phase.SESSION_STOP


def test_without_the_iso15118_package_it_says_so_and_exits_2() -> None:
    # the main environment has no iso15118 (it lives in .venv-iso15118)
    r = subprocess.run(
        [sys.executable, "-m", "bptd.iso15118", "--iface", "lo"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "iso15118 package is missing" in r.stderr


def test_an_unknown_protocol_is_refused_with_exit_2() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bptd.iso15118", "--iface", "lo", "--protocols", "ISO_15118_20_AC"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "ISO_15118_20_AC" in r.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_verifies_and_runs_the_frontend_from_its_own_venv(
    iso_python: Path, tmp_path: Path
) -> None:
    text = UNIT.read_text()
    assert "/opt/bptd-iso15118/bin/python -m bptd.iso15118" in text
    assert "MemoryDenyWriteExecute" not in text.replace("# no MemoryDenyWriteExecute", "")
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/bptd-iso15118/bin/python", str(iso_python)))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [ln for ln in r.stderr.splitlines() if UNIT.name in ln]
    assert r.returncode == 0 and not problems, r.stderr
