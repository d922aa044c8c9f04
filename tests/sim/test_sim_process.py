"""`bptd sim` as its own process on udp_multicast, seen by an unrelated CANopen peer."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bptd.api.client import Client
from bptd.api.protocol import ApiError
from bptd.canbus import parse_bus_spec
from bptd.config import Config
from bptd.profile import Profile
from bptd.sim.probe import SimProbe

PRODUCTS = {0x10: 1, 0x20: 1, 0x3E: 2, 0x3F: 2, 0x5E: 3, 0x5F: 3}


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = random.randint(20000, 60000)
    endpoint = f"ipc://{tmp_path}/sim.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bptd.cli",
            "sim",
            "--can",
            f"udp_multicast:{port}",
            "--control",
            endpoint,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        with Client(endpoint, timeout_s=10.0) as c:
            assert c.call("ping")["role"] == "sim"
        yield f"udp_multicast:{port}", endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_identity_heartbeats_and_a_pdo_driven_module_across_processes(
    sim_process: tuple[str, str], reference_config: Config, reference_profile: Profile
) -> None:
    spec, endpoint = sim_process
    bus = parse_bus_spec(spec).open()
    with SimProbe(reference_config, bus) as probe:
        for node_id, product in PRODUCTS.items():
            node = probe.network[node_id]
            node.sdo.RESPONSE_TIMEOUT = 1.0
            node.sdo.MAX_RETRIES = 3
            assert node.sdo[0x1018][1].raw == 0x00000B7D
            assert node.sdo[0x1018][2].raw == product
            assert node.nmt.wait_for_heartbeat(2.0) in ("PRE-OPERATIONAL", "OPERATIONAL")
        with Client(endpoint) as sim:
            sim.call("sim", action="plug", connector="ccs", vehicle="bpt")
            sim.call("sim", action="ev", connector="ccs", cp="C", contactors=True)
            probe.start()
            probe.set(
                "chipset.ccs", cp_mode=1, pwm_duty_permille=50, contactor_command=(1 << 8) | 0b11
            )
            probe.set("afe.1", state_request=2, operating_mode=2)
            probe.set(
                "dcdc.1",
                state_request=2,
                power_mode=2,
                voltage_setpoint_v=450,
                charge_current_limit_a=12.0,
            )
            assert probe.wait_for(lambda: probe.get("dcdc.1", "dc_current_a") > 11.9, 5.0)
            status = sim.call("status")
            assert status["connectors"]["ccs"]["current_a"] == pytest.approx(12.0, abs=0.1)
            with pytest.raises(ApiError) as err:
                sim.call("sim", action="plug", connector="nowhere")
            assert err.value.code == "invalid_argument"
            with pytest.raises(ApiError) as err:
                sim.call("reboot")
            assert err.value.code == "unknown_command"


def test_the_sim_socket_answers_garbage_with_errors(sim_process: tuple[str, str]) -> None:
    import zmq

    _, endpoint = sim_process
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        for junk in (b"\xff\xfe", b"[1,2]", b'{"cmd": 5}', b"{", b'{"cmd":"sim","action":7}'):
            sock.send_multipart([b"", junk])
            assert sock.poll(5000), f"no reply to {junk!r}"
            reply = sock.recv_multipart()[-1]
            assert b'"ok": false' in reply
        deadline = time.monotonic() + 5
        with Client(endpoint) as c:
            while time.monotonic() < deadline:
                if c.call("ping")["pong"]:
                    break
    finally:
        sock.close(0)


def test_bptctl_drives_the_sim_socket(sim_process: tuple[str, str]) -> None:
    _, endpoint = sim_process
    bptctl = [
        sys.executable,
        "-c",
        "import sys; from bptd.cli import bptctl_main; sys.exit(bptctl_main())",
        "--control",
        endpoint,
    ]
    r = subprocess.run(
        [*bptctl, "--json", "sim", "action=plug", "connector=ccs", "vehicle=bpt", "soc=0.3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert '"soc": 0.3' in r.stdout
    r = subprocess.run(
        [*bptctl, "sim", "action=plug", "connector=ccs"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 1 and r.stderr.startswith("error wrong_state:")
    r = subprocess.run([*bptctl, "sim", "plug"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not key=value" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from bptd.cli import bptctl_main; sys.exit(bptctl_main())",
            "--control",
            endpoint + ".nobody",
            "--timeout",
            "0.5",
            "status",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 3 and "error timeout" in r.stderr
