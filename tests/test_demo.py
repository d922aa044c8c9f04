"""`make demo` tells a whole bidirectional session with measured values."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_prints_a_bidirectional_session() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bptd.cli", "demo"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "CP state B" in out and "cable check at" in out and "valid" in out
    assert "precharge" in out and "stopped" in out
    powers = [float(p) for p in re.findall(r"=\s+([+-]\d+\.\d+) kW", out)]
    assert max(powers) > 9.5  # +10 kW reached
    assert min(powers) < -9.5  # -10 kW reached
    energy = re.search(r"energy to vehicle ([\d.]+) Wh, from vehicle ([\d.]+) Wh", out)
    assert energy and float(energy.group(1)) > 0 and float(energy.group(2)) > 0
