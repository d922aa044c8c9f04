"""``kill -9`` of ``bptd run`` in the middle of a session, with ``bptd sim`` as its own process.

The daemon dies without a word while 10 kW flow into the vehicle. Nobody ramps down, nobody
opens a contactor: the devices must do it on their own (RPDO deadline, heartbeat consumer
of the supervisor), within the heartbeat consumer time plus a margin. A new ``bptd run`` on
the same records then boots every node, finds the station safe and closes the killed
session as ``interrupted`` with the energy the journal held at the kill, and it stops in
order (exit 0) on SIGTERM. After the operator's ``reset`` the station charges again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.daemon.helpers import wait_until

from bptd.api.client import ApiError, Client
from bptd.codes import OUTPUTS
from bptd.config import load_config
from bptd.paths import DEFAULT_CONFIG
from bptd.records import JOURNAL_NAME

START_TIMEOUT_S = 60.0
SESSION_TIMEOUT_S = 60.0
SAFE_MARGIN_S = 1.0
SETPOINT_W = 10_000.0
#: |current| below which a module or connector counts as carrying nothing
ZERO_A = 0.5


class Bptd:
    """A ``bptd`` subprocess whose output goes to a file (shown when a check fails)."""

    def __init__(self, name: str, args: list[str], tmp_path: Path) -> None:
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bptd.cli", *args, "--log-level", "warning"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, chars: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace")
        return f"--- {self.name} (exit {self.proc.poll()}) ---\n{text[-chars:]}"

    def stop(self) -> int:
        """SIGTERM, then SIGKILL when it does not end; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def answering(client: Client, proc: Bptd, role: str) -> bool:
    """True once ``proc`` answers ``ping`` as ``role``; fails at once when it exited."""
    assert proc.alive(), proc.output()
    try:
        return bool(client.call("ping")["role"] == role)
    except ApiError as exc:
        if exc.code == "timeout":
            return False
        raise


def recorded_import_wh(journal: Path, session_id: str) -> float | None:
    """The energy to the vehicle that the journal holds for ``session_id`` (last line)."""
    value = None
    for line in journal.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("session_id") == session_id and rec.get("type") in ("progress", "stop"):
            value = float(rec["energy_import_wh"])
    return value


def flowing(snap: dict[str, Any], modules: list[str]) -> bool:
    ccs = snap["connectors"]["ccs"]
    return (
        ccs["outputs_closed"]
        and ccs["current_a"] > 10.0
        and all(snap["modules"][n]["current_a"] > 2.0 for n in modules)
    )


def contactors_open(snap: dict[str, Any]) -> bool:
    ccs = snap["connectors"]["ccs"]
    return not ccs["outputs_closed"] and ccs["contactor_feedback"] & OUTPUTS == 0


def currents_zero(snap: dict[str, Any], modules: list[str]) -> bool:
    return abs(snap["connectors"]["ccs"]["current_a"]) < ZERO_A and all(
        abs(snap["modules"][n]["current_a"]) < ZERO_A for n in modules
    )


class Station:
    """The daemon's API and the sim socket of one ``bptd run`` on the virtual station."""

    def __init__(self, api: Client, sim: Client, modules: list[str]) -> None:
        self.api = api
        self.sim = sim
        self.modules = modules

    def ccs(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api.call("status", connector="ccs")
        return result

    def nodes_up(self) -> bool:
        st = self.api.call("status")["station"]
        return bool(st["nodes_operational"] == st["nodes_total"] > 0)

    def settled(self) -> dict[str, Any] | None:
        """ccs once connected or faulted (a vehicle is plugged), else None."""
        c = self.ccs()
        return c if c["state"] in ("connected", "fault") else None

    def wait_state(self, state: str) -> None:
        wait_until(lambda: self.ccs()["state"] == state, SESSION_TIMEOUT_S, f"ccs {state}")

    def session(self) -> str:
        """Authorize, allocate, bidirectional, start, 10 kW until current flows; its id."""
        self.api.call("authorize", connector="ccs")
        self.api.call("allocate", connector="ccs", modules=[int(n) for n in self.modules])
        self.api.call("set_mode", connector="ccs", bidirectional=True)
        self.api.call("start", connector="ccs")
        self.wait_state("energy_transfer")
        self.api.call("setpoint", connector="ccs", power_w=SETPOINT_W)
        wait_until(
            lambda: flowing(self.sim.call("status"), self.modules),
            SESSION_TIMEOUT_S,
            "current flowing through the modules into the vehicle",
        )
        session_id = self.ccs()["session_id"]
        assert isinstance(session_id, str) and session_id
        return session_id

    def record(self, session_id: str) -> dict[str, Any]:
        records: list[dict[str, Any]] = self.api.call("sessions")["sessions"]
        (rec,) = [r for r in records if r["session_id"] == session_id]
        return rec


@dataclass
class Crash:
    """What :func:`crash` leaves behind: the restarted daemon, and what was measured."""

    station: Station  # the restarted daemon and the sim, both answering
    daemon: Bptd  # the restarted ``bptd run``
    sim: Bptd
    session_id: str  # the session running at the kill
    recorded_import_wh: float  # what the journal held for it at the kill
    consumer_s: float  # the devices' heartbeat consumer time of the supervisor
    zero_after_s: float  # kill -> every current below ZERO_A
    open_after_s: float  # kill -> output contactors open


@pytest.fixture
def crash(tmp_path: Path) -> Iterator[Crash]:
    """``bptd sim`` and ``bptd run``, 10 kW into a vehicle, ``kill -9``, ``bptd run`` again."""
    procs: list[Bptd] = []
    config = tmp_path / "bptd.toml"
    config.write_text(DEFAULT_CONFIG.read_text() + "\n[records]\nfsync_interval_s = 1\n")
    cfg = load_config(config)
    consumer_s = cfg.can.consumer_factor * cfg.can.heartbeat_ms / 1000.0
    modules = [str(m.n) for m in cfg.modules]
    can = f"udp_multicast:{random.randint(20000, 60000)}"
    sim_ep = f"ipc://{tmp_path}/sim.sock"
    control = f"ipc://{tmp_path}/control.sock"
    records = tmp_path / "records"
    journal = records / JOURNAL_NAME
    run_args = [
        "run", "--config", str(config), "--can", can, "--control", control,
        "--telemetry", f"ipc://{tmp_path}/telemetry.sock", "--records", str(records),
    ]  # fmt: skip
    try:
        sim = Bptd(
            "sim",
            ["sim", "--config", str(config), "--can", can, "--control", sim_ep,
             "--daemon", control],
            tmp_path,
        )  # fmt: skip
        procs.append(sim)
        first = Bptd("run-1", run_args, tmp_path)
        procs.append(first)
        with Client(sim_ep, timeout_s=2.0) as sim_api, Client(control, timeout_s=2.0) as api:
            station = Station(api, sim_api, modules)
            wait_until(lambda: answering(sim_api, sim, "sim"), START_TIMEOUT_S, "sim answers")
            wait_until(lambda: answering(api, first, "daemon"), START_TIMEOUT_S, "run answers")
            wait_until(station.nodes_up, START_TIMEOUT_S, "every node operational")

            # ------------------------------------------------------------ 10 kW to the vehicle
            sim_api.call("sim", action="plug", connector="ccs", vehicle="bpt")
            station.wait_state("connected")
            session_id = station.session()

            def live_import_wh() -> float:
                rec = station.record(session_id)
                assert rec["stopped"] is None
                return float(rec["energy_import_wh"])

            live = wait_until(live_import_wh, SESSION_TIMEOUT_S, "energy metered")
            wait_until(
                lambda: (recorded_import_wh(journal, session_id) or 0.0) >= live,
                SESSION_TIMEOUT_S,
                f"the journal holding at least the {live} Wh metered",
            )
            assert flowing(sim_api.call("status"), modules)

            # ------------------------------------------------------------ kill -9
            os.kill(first.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            open_after = zero_after = None
            deadline = killed_at + consumer_s + 10.0
            pause = threading.Event()
            while (open_after is None or zero_after is None) and time.monotonic() < deadline:
                pause.wait(0.01)
                snap = sim_api.call("status")
                t = time.monotonic() - killed_at
                if open_after is None and contactors_open(snap):
                    open_after = t
                if zero_after is None and currents_zero(snap, modules):
                    zero_after = t
            assert first.proc.wait(10) == -signal.SIGKILL
            assert open_after is not None, f"contactors still closed: {snap['connectors']}"
            assert zero_after is not None, f"current still flowing: {snap}"
            recorded = recorded_import_wh(journal, session_id)
            assert recorded is not None and recorded >= live > 0

        # ---------------------------------------------------------------- restart
        second = Bptd("run-2", run_args, tmp_path)
        procs.append(second)
        with Client(sim_ep, timeout_s=2.0) as sim_api, Client(control, timeout_s=2.0) as api:
            station = Station(api, sim_api, modules)
            wait_until(lambda: answering(api, second, "daemon"), START_TIMEOUT_S, "restarted")
            yield Crash(
                station, second, sim, session_id, recorded, consumer_s, zero_after, open_after
            )
    finally:
        for p in reversed(procs):
            p.stop()


def test_sigkill_mid_session_leaves_the_station_safe_and_the_record_whole(
    crash: Crash,
) -> None:
    print(
        f"\nafter SIGKILL: current below {ZERO_A} A after {crash.zero_after_s:.3f} s, output "
        f"contactors open after {crash.open_after_s:.3f} s (heartbeat consumer time "
        f"{crash.consumer_s:.1f} s)"
    )
    assert max(crash.zero_after_s, crash.open_after_s) <= crash.consumer_s + SAFE_MARGIN_S

    station, api = crash.station, crash.station.api
    wait_until(station.nodes_up, START_TIMEOUT_S, "every node operational after the restart")

    # the vehicle is still plugged: connected, or the fault the chipset latched at the kill
    ccs = wait_until(station.settled, START_TIMEOUT_S, "ccs connected or faulted")
    assert ccs["state"] == "connected" or ccs["fault"] == "chipset_fault", ccs
    assert ccs["session_id"] is None and ccs["allocation"] is None, ccs
    assert ccs["applied_current_a"] == 0.0, ccs
    snap = station.sim.call("status")
    assert snap["connectors"]["ccs"]["vehicle"] is not None
    assert contactors_open(snap) and currents_zero(snap, station.modules), snap

    rec = station.record(crash.session_id)
    assert rec["reason"] == "interrupted" and rec["stopped"] is not None, rec
    assert rec["energy_import_wh"] == round(crash.recorded_import_wh, 3) > 0, rec
    assert all(r["stopped"] is not None for r in api.call("sessions")["sessions"])

    os.kill(crash.daemon.pid, signal.SIGTERM)
    try:
        code = crash.daemon.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bptd run did not stop on SIGTERM\n{crash.daemon.output()}")
    assert code == 0, crash.daemon.output()
    assert crash.sim.alive(), crash.sim.output()


def test_after_sigkill_and_a_reset_the_station_charges_again(crash: Crash) -> None:
    station, api = crash.station, crash.station.api
    wait_until(station.nodes_up, START_TIMEOUT_S, "every node operational after the restart")

    ccs = wait_until(station.settled, START_TIMEOUT_S, "ccs connected or faulted")
    if ccs["state"] == "fault":
        wait_until(lambda: reset(api), SESSION_TIMEOUT_S, "the fault reset accepted")
    station.wait_state("connected")
    again = station.session()
    assert again != crash.session_id
    api.call("stop", connector="ccs")
    station.wait_state("finished")
    rec = station.record(again)
    assert rec["energy_import_wh"] > 0 and rec["reason"] != "interrupted", rec


def reset(api: Client) -> bool:
    """``reset`` of ccs; False while it is too early (shutting down, output still live)."""
    try:
        api.call("reset", connector="ccs")
    except ApiError as exc:
        early = (exc.code == "wrong_state" and "retry" in exc.message) or (
            exc.code == "not_allowed" and "persists" in exc.message
        )
        if early:
            return False
        raise
    return True
