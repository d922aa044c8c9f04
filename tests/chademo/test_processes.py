"""`bptd chademo` and `bptd sim --chademo-can` as processes, with the daemon, over udp_multicast:
the hardware-free station in separate processes, as on the board (can0 / can1)."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.daemon.helpers import wait_until

from bptd.api.client import Client
from bptd.config import Config
from bptd.daemon.app import Daemon, DaemonOptions


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bptd.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )


def _stop(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    proc.terminate()
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")


@pytest.fixture
def three_processes(reference_config: Config, tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = random.randint(20000, 59000)
    station_can, chademo_can = f"udp_multicast:{port}", f"udp_multicast:{port + 1}"
    sim_sock, control = f"ipc://{tmp_path}/sim.sock", f"ipc://{tmp_path}/control.sock"
    sim = _spawn("sim", "--can", station_can, "--chademo-can", chademo_can, "--control",
                 sim_sock, "--log-level", "warning")  # fmt: skip
    charger = None
    cfg = dataclasses.replace(
        reference_config, can=dataclasses.replace(reference_config.can, consumer_factor=10.0)
    )
    daemon = Daemon(cfg, DaemonOptions(
        can=station_can, control=control, telemetry=f"ipc://{tmp_path}/telemetry.sock",
        records_dir=str(tmp_path / "records"),
    ))  # fmt: skip
    try:
        with Client(sim_sock, timeout_s=15.0) as c:
            assert c.call("ping")["role"] == "sim"
        daemon.start_thread()
        assert daemon.ready.wait(30.0), "daemon not ready"
        charger = _spawn("chademo", "--can", chademo_can, "--control", control,
                         "--log-level", "info")  # fmt: skip
        with Client(sim_sock, timeout_s=10.0) as s, Client(control, timeout_s=10.0) as d:
            yield {"sim": s, "daemon": d, "charger": charger}
    finally:
        logs = _stop(charger) if charger is not None else ("", "")
        daemon.stop_thread()
        sim_logs = _stop(sim)
        print("bptd chademo:", logs[0][-3000:], logs[1][-2000:], "bptd sim:", sim_logs[1][-2000:])


def test_a_chademo_session_across_processes(three_processes: dict[str, Any]) -> None:
    sim, d = three_processes["sim"], three_processes["daemon"]

    def state() -> str:
        return str(d.call("status", connector="chademo")["state"])

    sim.call("sim", action="plug", connector="chademo", vehicle="chademo_v2h")
    wait_until(lambda: state() == "connected", 15.0, "connected")
    d.call("authorize", connector="chademo")
    d.call("allocate", connector="chademo", modules=[1])
    d.call("set_mode", connector="chademo", bidirectional=True)
    d.call("start", connector="chademo")
    wait_until(lambda: state() == "energy_transfer", 30.0, "energy transfer")
    d.call("setpoint", connector="chademo", power_w=-3000)
    wait_until(
        lambda: abs((d.call("status", connector="chademo")["power_w"] or 0) + 3000) < 300,
        15.0,
        "-3 kW",
    )
    status = d.call("status", connector="chademo")
    assert status["ev"]["bpt"] is True and status["ev"]["phase"] == "charge_loop"
    d.call("stop", connector="chademo")
    wait_until(lambda: state() == "finished", 20.0, "finished")
    wait_until(
        lambda: (
            not sim.call("sim", action="status")["connectors"]["chademo"]["vehicle"][
                "contactors_closed"
            ]
        ),
        10.0,
        "vehicle contactors open",
    )
    # the charger process ended its session (hlc_end): no EV data left at the daemon
    wait_until(lambda: not d.call("status", connector="chademo")["ev"]["present"], 10.0, "hlc_end")
    assert three_processes["charger"].poll() is None  # still serving


def test_bptd_chademo_refuses_an_unknown_connector() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bptd.cli", "chademo", "--connector", "nope", "--can",
         "virtual:x"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert b"no connector 'nope'" in result.stderr
    # the same through chademo_main, the entry point a bptd-chademo console script would use
    code = "import sys; from bptd.cli import chademo_main; sys.exit(chademo_main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "--connector", "nope", "--can", "virtual:x"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and b"no connector 'nope'" in result.stderr
