"""Daemon benchmark: setpoint latency, loop jitter and loop CPU with 16 modules.

An in-process :class:`~bptd.daemon.app.Daemon` (``sim=True``: the virtual station and its
virtual EVCC on a python-can ``virtual`` bus, API sockets in a temp dir) runs a station of
one CCS connector and 16 modules (DC/DC 0x3D + n, AFE 0x5D + n), with one contactor
configuration routing all 16 in parallel. One bidirectional session is driven through the
API to energy transfer with every module allocated, then:

(a) Setpoint latency: ``SETPOINTS`` ``setpoint`` commands cycling through
    ``SETPOINT_CYCLE_W``, each sent ``SETPOINT_GAP_S`` after the previous reply. The figure
    is the daemon's own ``loop.command_latency_s``: handler entry -> return of the first
    ``fieldbus.flush()``, from the tick the command triggered on, that handed RPDOs to the
    bus (an RPDO held by its inhibit time leaves in a later flush, and the sample says so).
    Samples are tagged by command (the virtual EVCC's ``hlc_update`` commands are urgent
    too), and every setpoint is checked to have put DC/DC RPDO1 frames on the bus inside
    its window (the frames' send timestamps, seen by the master's own notifier). Baseline:
    the client round trip of ``ping`` through the same socket.
(b) Loop jitter: ``|period - 10 ms|`` of the loop's ticks during ``STEADY_S`` of steady
    energy transfer (the EVCC's ``hlc_update`` every 100 ms included), and the lateness of
    the tick starts. Baseline: the same loop, idle (modules booted, no vehicle).
(c) Loop CPU: CPU time of the loop thread (``Daemon.loop_cpu_s``, ``time.thread_time`` in
    that thread) over the same window / wall time, in percent of one core. The virtual
    station, its EVCC and the CAN notifier threads are not the loop and are not counted;
    the whole process and a per-thread breakdown are reported for information.

Two runs: the station as on a board, with the virtual station in its own process
(``bptd sim`` on a ``udp_multicast`` bus, as a separate CAN peer: the figures of record), and
the virtual station in the daemon's process (``bptd run --sim``, a ``virtual`` bus; the
``*_inprocess_*`` figures). In-process, the virtual station's thread (module physics every
5 ms, about half a core) shares the GIL with the loop: it is not counted in (c), but it
lengthens the tails of (a) and (b) by what the simulator costs, not the daemon.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from bench.common import Row, median, percentile
from bptd.api.client import Client
from bptd.config import Config, parse_config
from bptd.daemon.app import Daemon, DaemonOptions

N_MODULES = 16
CONTROL_HZ = 100.0
CONNECTOR = "ccs"
RPDO1_BASE = 0x200
SETPOINTS = 300
SETPOINT_GAP_S = 0.03
SETPOINT_CYCLE_W = (20_000.0, -20_000.0, 5_000.0, -5_000.0, 40_000.0, 0.0)
PINGS = 300
STEADY_W = 80_000.0
STEADY_S = 10.0
IDLE_S = 4.0
#: send timestamps (wall clock) against perf_counter: allowance at the end of the window
CLOCK_SLACK_S = 50e-6
#: a vehicle that takes what 16 modules give (16 x 30 A / 10.5 kW), both ways
VEHICLE = {
    "max_charge_current_a": 500.0,
    "max_discharge_current_a": 500.0,
    "max_charge_power_w": 200_000.0,
    "max_discharge_power_w": 200_000.0,
}


def station_toml(n_modules: int = N_MODULES) -> str:
    """One CCS connector (chipset 0x10), modules 1..n, one configuration: all in parallel."""
    lines = [
        "[station]",
        f'name = "bench station, {n_modules} modules"',
        f"control_hz = {CONTROL_HZ:g}",
        "[can]",
        "supervisor_node_id = 0x01",
        "boot_retry_s = 0.5",
        "[[connector]]",
        f'name = "{CONNECTOR}"',
        'kind = "ccs"',
        "chipset_node_id = 0x10",
        "max_current_a = 500",
        "max_power_w = 200000",
    ]
    for n in range(1, n_modules + 1):
        lines += [
            "[[module]]",
            f"n = {n}",
            f"dcdc_node_id = 0x{0x3D + n:02X}",
            f"afe_node_id = 0x{0x5D + n:02X}",
        ]
    lines += [
        "[[contactor_configuration]]",
        "id = 1",
        f'name = "PARALLEL_{n_modules}_{CONNECTOR.upper()}"',
        f"routes = {{ {CONNECTOR} = {list(range(1, n_modules + 1))} }}",
    ]
    return "\n".join(lines) + "\n"


def station_config(n_modules: int = N_MODULES) -> Config:
    return parse_config(station_toml(n_modules), f"<bench: {n_modules} modules>")


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


class _Tags:
    """Names every urgent command in the order the loop times them.

    ``loop.command_latency_s`` gets one sample per ``loop.command_received(at)``, in call
    order; wrapping the server's handler and ``command_received`` (both run in the loop
    thread) records ``(command, at)`` in that same order, so the i-th sample is the i-th tag.
    """

    def __init__(self, dm: Daemon) -> None:
        assert dm.server is not None and dm.loop is not None
        self.tags: list[tuple[str, float]] = []
        self._cmd = ""
        handler = dm.server.handler
        received = dm.loop.command_received

        def tagged_handler(request: dict[str, Any]) -> Any:
            self._cmd = str(request.get("cmd", ""))
            return handler(request)

        def tagged_received(
            at: float, command: str = "", args: dict[str, Any] | None = None
        ) -> None:
            self.tags.append((self._cmd, at))
            received(at, command, args)

        dm.server.handler = tagged_handler
        setattr(dm.loop, "command_received", tagged_received)  # noqa: B010


class _RpdoLog:
    """Send times (perf_counter) of the DC/DC RPDO1 frames, from the master's own notifier.

    The master's bus loops its own frames back, and python-can's ``virtual`` interface
    stamps each frame with ``time.time()`` when it is sent; no extra receiver is added to
    the channel (each one would add a frame copy to every send, inside the measurement).
    """

    def __init__(self, dm: Daemon, node_ids: list[int]) -> None:
        self.frames: collections.deque[tuple[float, int]] = collections.deque(maxlen=200_000)
        self.offset = _wall_minus_perf()
        link = getattr(dm.fieldbus, "_link", None)
        if link is None:
            raise RuntimeError("the fieldbus has no link")
        for nid in node_ids:
            link.network.subscribe(RPDO1_BASE + nid, self._on_frame)

    def _on_frame(self, can_id: int, data: bytearray, timestamp: float) -> None:
        self.frames.append((timestamp - self.offset, can_id))

    def between(self, t0: float, t1: float) -> set[int]:
        return {cob for t, cob in list(self.frames) if t0 <= t <= t1}


def _wall_minus_perf() -> float:
    best = (float("inf"), 0.0)
    for _ in range(50):
        a = time.perf_counter()
        w = time.time()
        b = time.perf_counter()
        best = min(best, (b - a, w - (a + b) / 2))
    return best[1]


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of every live thread of this process by name (Linux /proc), else {}."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = collections.defaultdict(float)
    for task in pathlib.Path("/proc/self/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        name = names.get(int(task.name), "other")
        name = name.split(" for ")[0].rstrip("_0123456789")  # one group per kind of thread
        out[name] += (int(fields[11]) + int(fields[12])) / tick
    return dict(out)


class _CpuWindow:
    """Loop-thread CPU, process CPU and per-thread CPU over a window of wall time."""

    def __init__(self, dm: Daemon) -> None:
        self.dm = dm
        self.wall0 = time.monotonic()
        self.loop0 = dm.loop_cpu_s
        self.proc0 = time.process_time()
        self.threads0 = _thread_cpu()

    def done(self) -> dict[str, Any]:
        wall = time.monotonic() - self.wall0
        loop = self.dm.loop_cpu_s - self.loop0
        proc = time.process_time() - self.proc0
        threads = _thread_cpu()
        per = {k: 100 * (v - self.threads0.get(k, 0.0)) / wall for k, v in threads.items()}
        return {
            "loop_percent": 100 * loop / wall,
            "process_percent": 100 * proc / wall,
            "threads_percent": dict(sorted(per.items(), key=lambda kv: -kv[1])),
            "wall_s": wall,
        }


def _wait_state(c: Client, pred: Callable[[dict[str, Any]], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    s: dict[str, Any] = {}
    while time.monotonic() < deadline:
        s = c.call("status", connector=CONNECTOR)
        if pred(s):
            return
        time.sleep(0.05)
    raise RuntimeError(
        f"timeout: state {s.get('state')}, fault {s.get('fault')} {s.get('fault_detail')}"
    )


def _window(dm: Daemon, seconds: float) -> tuple[list[float], list[float], dict[str, Any]]:
    """Periods and lateness (ms) of the loop over ``seconds``, and the CPU of that window."""
    dm.periods_s.clear()
    dm.lateness_s.clear()
    cpu = _CpuWindow(dm)
    time.sleep(seconds)
    usage = cpu.done()
    period = 1.0 / dm.cfg.station.control_hz
    jitter = [abs(p - period) * 1000 for p in list(dm.periods_s)]
    late = [x * 1000 for x in list(dm.lateness_s)]
    return jitter, late, usage


@contextlib.contextmanager
def _daemon(cfg: Config, separate_sim: bool) -> Iterator[tuple[Daemon, Client, Client]]:
    """The daemon, its client and the client of the virtual station's ``sim`` actions."""
    with tempfile.TemporaryDirectory(prefix="bptd-bench-") as d:
        control = f"ipc://{d}/control.sock"
        sim_proc: subprocess.Popen[bytes] | None = None
        if separate_sim:
            port = random.randint(20000, 60000)
            config_file = pathlib.Path(d, "station.toml")
            config_file.write_text(station_toml(len(cfg.modules)))
            sim_control = f"ipc://{d}/sim.sock"
            sim_proc = subprocess.Popen(
                [sys.executable, "-m", "bptd.cli", "sim", "--config", str(config_file),
                 "--can", f"udp_multicast:{port}", "--control", sim_control,
                 "--daemon", control, "--log-level", "error"],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            opts = DaemonOptions(
                can=f"udp_multicast:{port}",
                control=control,
                telemetry=f"ipc://{d}/telemetry.sock",
                records_dir=d,
            )
        else:
            opts = DaemonOptions(
                sim=True, control=control, telemetry=f"ipc://{d}/telemetry.sock", records_dir=d
            )
        dm = Daemon(cfg, opts)
        dm.start_thread()
        c = Client(control)
        sim = Client(sim_control) if sim_proc is not None else c
        try:
            yield dm, c, sim
        finally:
            if sim is not c:
                sim.close()
            c.close()
            dm.stop_thread()
            if sim_proc is not None:
                sim_proc.terminate()
                sim_proc.wait(10)


def _bus_floor(spec: str, frames: int, repeats: int = 300) -> list[float]:
    """ms to hand ``frames`` frames to a bus of ``spec`` by plain python-can sends: the
    floor under the setpoint latency that the CAN interface sets, not the daemon (on
    ``udp_multicast`` each send is an IPv6 multicast datagram; SocketCAN is cheaper). The
    frames carry a 29-bit identifier no CANopen node listens to."""
    import can

    from bptd.canbus import parse_bus_spec

    bus = parse_bus_spec(spec).open()
    msg = can.Message(arbitration_id=0x1FFFFFFF, is_extended_id=True, data=bytes(8))
    out = []
    pause = threading.Event()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(frames):
                bus.send(msg)
            out.append((time.perf_counter() - t0) * 1000)
            pause.wait(0.002)
    finally:
        bus.shutdown()
    return out


def _session(c: Client, sim: Client, n_modules: int) -> None:
    sim.call("sim", action="plug", connector=CONNECTOR, vehicle="bpt", **VEHICLE)
    _wait_state(c, lambda s: s["state"] == "connected", 10.0)
    c.call("authorize", connector=CONNECTOR)
    c.call("allocate", connector=CONNECTOR, modules=list(range(1, n_modules + 1)))
    c.call("set_mode", connector=CONNECTOR, bidirectional=True)
    c.call("start", connector=CONNECTOR)
    _wait_state(c, lambda s: s["state"] == "energy_transfer", 20.0)


def _pings(c: Client) -> list[float]:
    out = []
    pause = threading.Event()
    for _ in range(PINGS):
        t0 = time.perf_counter()
        c.call("ping")
        out.append((time.perf_counter() - t0) * 1000)
        pause.wait(0.005)
    return out


def _setpoints(dm: Daemon, c: Client, tags: _Tags, rpdos: _RpdoLog) -> dict[str, Any]:
    """``SETPOINTS`` setpoints; their latency samples (ms) and the RPDO check."""
    assert dm.loop is not None
    first = len(tags.tags)
    pause = threading.Event()
    for k in range(SETPOINTS):
        c.call("setpoint", connector=CONNECTOR, power_w=SETPOINT_CYCLE_W[k % len(SETPOINT_CYCLE_W)])
        pause.wait(SETPOINT_GAP_S)
    last = len(tags.tags)
    deadline = time.monotonic() + 1.0
    while len(dm.loop.command_latency_s) < last and time.monotonic() < deadline:
        time.sleep(0.01)  # the last samples are in (a held RPDO leaves within 100 ms)
    time.sleep(0.05)  # and their frames seen
    samples = list(dm.loop.command_latency_s)
    if len(samples) > len(tags.tags):
        raise RuntimeError(f"{len(samples)} latency samples for {len(tags.tags)} commands")
    tagged = list(zip(tags.tags[first:], samples[first:], strict=False))
    lat: list[float] = []
    other: list[float] = []
    with_rpdo = all_modules = 0
    missed: list[tuple[int, float, float]] = []  # (setpoint index, power, latency ms)
    for (name, at), d in tagged:
        if name != "setpoint":
            other.append(d * 1000)
            continue
        cobs = rpdos.between(at, at + d + CLOCK_SLACK_S)
        with_rpdo += bool(cobs)
        all_modules += len(cobs) == N_MODULES
        if not cobs:
            missed.append((len(lat), SETPOINT_CYCLE_W[len(lat) % len(SETPOINT_CYCLE_W)], d * 1e3))
        lat.append(d * 1000)
    if len(lat) != SETPOINTS:
        raise RuntimeError(f"{len(lat)} setpoint samples for {SETPOINTS} setpoints")
    return {
        "latency_ms": lat,
        "other_ms": other,
        "with_rpdo": with_rpdo,
        "all": all_modules,
        "missed": missed,
    }


def measure(n_modules: int = N_MODULES, separate_sim: bool = True) -> dict[str, Any]:
    cfg = station_config(n_modules)
    with _daemon(cfg, separate_sim) as (dm, c, sim):
        if not dm.ready.wait(30.0):
            raise RuntimeError("the daemon did not get ready")
        assert dm.loop is not None
        up, total = dm.loop.nodes_booted()
        if up != total:
            raise RuntimeError(f"{up}/{total} nodes operational")
        tags = _Tags(dm)
        idle = _window(dm, IDLE_S)
        _session(c, sim, n_modules)
        dcdc_ids = [m.dcdc_node_id for m in cfg.modules]
        rpdos = _RpdoLog(dm, dcdc_ids)
        pings = _pings(c)
        floor = _bus_floor(str(dm.bus_spec), n_modules) if separate_sim else None
        sp = _setpoints(dm, c, tags, rpdos)
        c.call("setpoint", connector=CONNECTOR, power_w=STEADY_W)
        time.sleep(0.5)  # ramped (480 kW/s)
        steady = _window(dm, STEADY_S)
        status = c.call("status", connector=CONNECTOR)
        c.call("stop", connector=CONNECTOR)
        _wait_state(c, lambda s: s["state"] == "finished", 10.0)
    return {
        "idle": idle,
        "steady": steady,
        "pings_ms": pings,
        "setpoints": sp,
        "steady_power_w": status.get("power_w"),
        "modules": n_modules,
        "bus_floor_ms": floor,
    }


def report(m: dict[str, Any], inprocess: bool = False) -> tuple[list[Row], dict[str, float]]:
    """Rows and figures of one run; the in-process run's rows say so and its figures are
    named ``<figure>_inprocess`` (the figures of record are the separate-process run's)."""
    rows, figures = _report(m)
    if not inprocess:
        return rows, figures
    rows = [dataclasses.replace(r, name=r.name + " [sim in-process]") for r in rows]
    return rows, {f"{k}_inprocess": v for k, v in figures.items()}


def _report(m: dict[str, Any]) -> tuple[list[Row], dict[str, float]]:
    sp = m["setpoints"]
    lat, pings = sp["latency_ms"], m["pings_ms"]
    jitter, late, cpu = m["steady"]
    idle_jitter, idle_late, idle_cpu = m["idle"]
    held = sum(1 for x in lat if x > 1000.0 / CONTROL_HZ)  # not out in its own tick
    rows = [
        Row(
            f"daemon setpoint latency, {N_MODULES} modules",
            "ms",
            median(lat),
            percentile(lat, 99),
            median(pings),
            f"request -> RPDOs on the bus; {sp['with_rpdo']}/{len(lat)} with DC/DC RPDOs, "
            f"{held} > 1 period; baseline ping round trip",
        ),
        Row(
            f"daemon loop jitter |period-10ms|, {N_MODULES} mod.",
            "ms",
            median(jitter),
            percentile(jitter, 99),
            median(idle_jitter),
            f"{len(jitter)} ticks in energy transfer; baseline idle loop",
        ),
        Row(
            "daemon loop tick lateness",
            "ms",
            median(late),
            percentile(late, 99),
            median(idle_late),
            "baseline idle loop",
        ),
        Row(
            f"daemon loop CPU, {N_MODULES} modules, 100 Hz",
            "%",
            cpu["loop_percent"],
            cpu["loop_percent"],
            idle_cpu["loop_percent"],
            f"loop thread, % of a core; whole process {cpu['process_percent']:.0f} %; "
            "baseline idle loop",
        ),
    ]
    if m["bus_floor_ms"]:
        floor = m["bus_floor_ms"]
        rows.insert(1, Row(
            f"CAN interface: {N_MODULES} frames handed to the bus",
            "ms",
            median(floor),
            percentile(floor, 99),
            None,
            "plain python-can sends on the same bus: the part of the latency that is the "
            "interface's",
        ))  # fmt: skip
    figures = {
        "setpoint_latency_p50_ms": median(lat),
        "setpoint_latency_p99_ms": percentile(lat, 99),
        "setpoint_latency_max_ms": max(lat),
        "setpoint_rpdo_flushed_fraction": sp["with_rpdo"] / len(lat),
        "setpoint_rpdo_all_modules_fraction": sp["all"] / len(lat),
        "setpoint_latency_over_period_fraction": held / len(lat),
        "api_ping_rtt_p50_ms": median(pings),
        "loop_jitter_p99_ms": percentile(jitter, 99),
        "loop_jitter_p50_ms": median(jitter),
        "loop_lateness_p99_ms": percentile(late, 99),
        "loop_jitter_idle_p99_ms": percentile(idle_jitter, 99),
        "loop_cpu_percent": cpu["loop_percent"],
        "loop_cpu_idle_percent": idle_cpu["loop_percent"],
        "process_cpu_percent": cpu["process_percent"],
        "sim_thread_cpu_percent": cpu["threads_percent"].get("bptd-sim", 0.0),
    }
    if m["bus_floor_ms"]:
        figures["setpoint_latency_bus_floor_p50_ms"] = median(m["bus_floor_ms"])
    if sp["other_ms"]:
        figures["hlc_update_latency_p50_ms"] = median(sp["other_ms"])
    return rows, figures


def run() -> tuple[list[Row], dict[str, float]]:
    _quiet()
    rows, figures = report(measure(separate_sim=True))
    rows_in, figures_in = report(measure(separate_sim=False), inprocess=True)
    return rows + rows_in, {**figures, **figures_in}


if __name__ == "__main__":
    from bench.common import format_table

    _quiet()
    res = measure()
    rows, figs = report(res)
    print(format_table(rows))
    for key in sorted(figs):
        print(f"{key:40} {figs[key]:.4g}")
    print("setpoints without DC/DC RPDOs in their tick (index, W, ms):", res["setpoints"]["missed"])
    for phase in ("idle", "steady"):
        print(f"{phase} CPU by thread (% of a core):")
        for name, pct in res[phase][2]["threads_percent"].items():
            print(f"    {name:32} {pct:6.1f}")
