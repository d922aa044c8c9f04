"""systemd/bptd-http.service is a valid unit and starts bptd-http as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "bptd-http.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_verifies(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("bptd-http")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/bptd-http", str(exe)))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [ln for ln in r.stderr.splitlines() if str(unit) in ln or UNIT.name in ln]
    assert r.returncode == 0 and not problems, r.stderr


def test_unit_starts_bptd_http_on_its_config() -> None:
    text = UNIT.read_text()
    assert "ExecStart=/usr/bin/bptd-http --config /etc/bptd/http.toml" in text
    assert "PartOf=bptd.service" in text and "User=bptd" in text
