"""`make demo` tells a whole bidirectional session through the daemon's API."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys


def test_demo_prints_a_bidirectional_session() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bptd.cli", "demo"], capture_output=True, text=True, timeout=180
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "CP state B" in out and "modules [1, 2] allocated in parallel" in out
    for transition in (
        "allocated -> cable_check",
        "cable_check -> precharge (isolation valid)",
        "precharge -> energy_transfer",
        "energy_transfer -> stopping",
        "welding_detection -> finished",
        "finished -> idle",
    ):
        assert transition in out, transition
    assert "fault" not in out
    powers = [float(p) for p in re.findall(r"=\s+([+-]\d+\.\d+) kW", out)]
    assert max(powers) > 9.7  # +10 kW reached
    assert min(powers) < -9.7  # -10 kW reached
    signs = [p > 0 for p in powers if abs(p) > 1.0]
    assert sum(a != b for a, b in itertools.pairwise(signs)) >= 3  # direction changes
    assert "module_derating" in out and "limit thermal_derating" in out
    energy = re.search(r"energy to vehicle ([\d.]+) Wh, from vehicle ([\d.]+) Wh", out)
    assert energy and float(energy.group(1)) > 0 and float(energy.group(2)) > 0
