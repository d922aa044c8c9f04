"""Fieldbus benchmark: PDO round trip through the master, and bus load with 16 modules.

(a) Round trip: ``Fieldbus.set`` + ``flush`` (RPDO1 of DC/DC 1) -> a device peer that
    answers each RPDO at once with its TPDO2 carrying the same number -> notifier ->
    inbox -> ``poll`` decodes it into ``values()``. The virtual station's own DC/DC TPDOs
    are timer-driven (50 / 500 ms), so the answering device is a raw echo peer on the same
    bus; the station still provides every other node. Baseline: the same echo through raw
    python-can ``virtual`` buses (send -> echo thread -> recv) in the same process.
(b) Bus load: a 16-module station (DC/DC 0x3D + n, AFE 0x5D + n) booted by the master,
    which then runs a 100 Hz loop changing every module's setpoints on every tick (so each
    setpoint RPDO goes out at the inhibit rate, the worst case). The load is counted
    from every frame a sniffer on the bus sees, with the standard frame-length formula and
    worst-case bit stuffing (:mod:`bptd.busload`), and compared with
    :func:`bptd.busload.estimate_default_load`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid

import can
import structlog

from bench.common import Row, median, percentile
from bptd.busload import BusLoadMeter, estimate_default_load
from bptd.config import Config, load_config
from bptd.dbcgen import synthetic_modules
from bptd.fieldbus import Fieldbus, NodeState
from bptd.profile import load_profile
from bptd.sim import VirtualStation

DCDC1_RPDO1, DCDC1_TPDO2 = 0x23E, 0x2BE
RTT_SAMPLES = 150
LOAD_SECONDS = 4.0
TICK_S = 0.01


def _quiet() -> None:
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def _echo(bus: can.BusABC, stop: threading.Event) -> None:
    """A device that answers RPDO1 of DC/DC 1 with TPDO2 (first 16 bits echoed)."""
    while not stop.is_set():
        msg = bus.recv(0.05)
        if msg is not None and msg.arbitration_id == DCDC1_RPDO1:
            data = bytes(msg.data[2:4]) + bytes(6)
            bus.send(can.Message(arbitration_id=DCDC1_TPDO2, data=data, is_extended_id=False))


def _wait(fb: Fieldbus, pred: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        fb.poll(now)
        fb.flush(now)
        if pred():  # type: ignore[operator]
            return True
        time.sleep(TICK_S)
    return False


def _operational(fb: Fieldbus) -> bool:
    return all(s is NodeState.OPERATIONAL for s in fb.states().values())


def _round_trip(cfg: Config) -> tuple[list[float], list[float]]:
    channel = f"bench-rtt-{uuid.uuid4()}"
    stop = threading.Event()
    peer = can.Bus(interface="virtual", channel=channel)
    echo = threading.Thread(target=_echo, args=(peer, stop), daemon=True)
    samples: list[float] = []
    with VirtualStation(cfg, f"virtual:{channel}"), Fieldbus(cfg, bus=f"virtual:{channel}") as fb:
        if not _wait(fb, lambda: _operational(fb), 15.0):
            raise RuntimeError(f"station did not boot: {fb.states()}")
        echo.start()
        values = fb.values("dcdc.1")
        gap = cfg.can.rpdo_inhibit_ms / 1000 + 0.002
        for i in range(RTT_SAMPLES):
            seq = 1000 + i  # the station's own TPDO2 carries 25.0 degC = 250
            time.sleep(gap)  # past the inhibit time: the change goes out at once
            t0 = time.perf_counter()
            fb.set("dcdc.1", voltage_setpoint_v=seq / 10)
            fb.flush(time.monotonic())
            deadline = t0 + 0.5
            while time.perf_counter() < deadline:
                fb.poll(time.monotonic())
                if round(values.get("temperature_c", 0.0) * 10) == seq:
                    samples.append((time.perf_counter() - t0) * 1000)
                    break
                time.sleep(0.0001)  # like a loop waiting in zmq.Poller: let the GIL go
    stop.set()
    echo.join()
    peer.shutdown()
    # baseline: raw python-can round trip through the same echo peer
    channel = f"bench-raw-{uuid.uuid4()}"
    stop = threading.Event()
    peer = can.Bus(interface="virtual", channel=channel)
    me = can.Bus(interface="virtual", channel=channel)
    echo = threading.Thread(target=_echo, args=(peer, stop), daemon=True)
    echo.start()
    raw: list[float] = []
    for i in range(RTT_SAMPLES):
        t0 = time.perf_counter()
        data = bytes(2) + (i).to_bytes(2, "little") + bytes(4)
        me.send(can.Message(arbitration_id=DCDC1_RPDO1, data=data, is_extended_id=False))
        if me.recv(0.5) is not None:
            raw.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.002)
    stop.set()
    echo.join()
    peer.shutdown()
    me.shutdown()
    return samples, raw


def _bus_load(cfg16: Config) -> dict[str, float]:
    channel = f"bench-load-{uuid.uuid4()}"
    meter = BusLoadMeter(window_s=LOAD_SECONDS * 2)
    sniffer = can.Bus(interface="virtual", channel=channel)

    def count(msg: can.Message) -> None:
        meter.add(msg.arbitration_id, msg.dlc, msg.is_extended_id, time.monotonic())

    notifier = can.Notifier(sniffer, [count], 0.1)
    out: dict[str, float] = {}
    try:
        with (
            VirtualStation(cfg16, f"virtual:{channel}"),
            Fieldbus(cfg16, bus=f"virtual:{channel}") as fb,
        ):
            t_boot = time.monotonic()
            if not _wait(fb, lambda: _operational(fb), 25.0):
                raise RuntimeError(f"16-module station did not boot: {fb.states()}")
            out["fieldbus_boot_s_16_modules"] = time.monotonic() - t_boot
            _wait(fb, lambda: False, 0.5)  # let boot traffic leave the window
            start = time.monotonic()
            meter.reset(start)
            k = 0
            next_tick = start
            while (now := time.monotonic()) < start + LOAD_SECONDS:
                fb.poll(now)
                k += 1
                for m in cfg16.modules:  # a new setpoint for every module on every tick
                    fb.set(f"dcdc.{m.n}", charge_current_limit_a=(k % 100) / 10)
                    fb.set(f"afe.{m.n}", active_power_setpoint_w=(k % 100) * 10)
                fb.flush(now)
                next_tick += TICK_S
                time.sleep(max(0.0, next_tick - time.monotonic()))
            end = time.monotonic()
            reading = meter.reading(end)
            own = fb.bus_load(end)
            lost = [key for key, s in fb.states().items() if s is not NodeState.OPERATIONAL]
    finally:
        notifier.stop()
        sniffer.shutdown()
    out["bus_load_percent"] = reading.percent
    out["bus_load_percent_nominal"] = reading.percent_nominal
    out["bus_load_frames_per_s"] = reading.frames_per_s
    out["bus_load_master_view_percent"] = own.percent
    out["bus_load_nodes_not_operational"] = float(len(lost))
    return out


def run() -> tuple[list[Row], dict[str, float]]:
    _quiet()
    base = load_config()
    cfg = base.replace(can=dataclasses.replace(base.can, boot_retry_s=0.5))
    rtt, raw = _round_trip(cfg)
    cfg16 = cfg.replace(modules=synthetic_modules(16))
    load = _bus_load(cfg16)
    est = estimate_default_load(cfg16, load_profile(), bitrate=500_000)
    rows = [
        Row(
            "fieldbus PDO round trip (set->RPDO->TPDO->poll)",
            "ms",
            median(rtt),
            percentile(rtt, 99),
            median(raw),
            f"{len(rtt)}/{RTT_SAMPLES} samples; baseline raw python-can echo",
        ),
        Row(
            "fieldbus bus load, 16 modules, 100 Hz setpoints",
            "%",
            load["bus_load_percent"],
            load["bus_load_percent"],
            est.worst_percent,
            f"{load['bus_load_frames_per_s']:.0f} fr/s seen; baseline = computed worst case",
        ),
    ]
    figures = {
        "fieldbus_rtt_p50_ms": median(rtt),
        "fieldbus_rtt_p99_ms": percentile(rtt, 99),
        "fieldbus_raw_rtt_p50_ms": median(raw),
        "bus_load_estimate_worst_percent": est.worst_percent,
        "bus_load_estimate_steady_percent": est.steady_percent,
        **load,
    }
    return rows, figures


if __name__ == "__main__":
    from bench.common import format_table

    r, f = run()
    print(format_table(r))
    for key in sorted(f):
        print(f"{key:40} {f[key]:.4g}")
