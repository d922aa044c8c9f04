"""Limits kernels: numba against the plain-Python reference on the same inputs.

Rows: one 16-module station tick (4 connectors x 4 modules, parallel and series), a
100 000-point envelope map of the DTU station (2 BMPU in series), the engine's whole tick
(compute + share + connector and module ramps), and the first call in a fresh process with
a warm on-disk cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from bench.common import Row, median, percentile
from bptd.limits import LimitsEngine, RampLimiter, kernels, reference
from bptd.limits import layout as L
from bptd.limits.samples import sample_station

MAP_POINTS = 100_000


def _times_us(fn: Callable[[], object], n: int) -> list[float]:
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def _station_16() -> tuple[np.ndarray, ...]:
    s = sample_station(n_modules=16, n_connectors=4, voltage_v=400.0)
    rng = np.random.default_rng(7)
    s.conn_in[:, L.C_VOLTAGE] = [380.0, 455.0, 760.0, 320.0]
    s.conn_in[2, L.C_SERIES] = 1.0
    s.conn_in[1, L.C_USER_CHG_P] = 30_000.0
    s.conn_in[3, L.C_EV_DIS_I] = -80.0
    s.conn_in[0, L.C_USER_AC_I] = 48.0
    s.mod_in[:, L.M_TEMP_C] = rng.uniform(30.0, 82.0, 16)
    s.mod_in[:, L.M_GRID_V] = rng.uniform(225.0, 235.0, 16)
    s.mod_in[5, L.M_ONLINE] = 0.0
    return (
        s.tab, s.lay, s.mod_type, s.mod_conn, s.mod_in, s.conn_in,
        s.conn_out, s.conn_code, s.mod_out, s.mod_code,
    )  # fmt: skip


def _bench_tick() -> tuple[Row, float]:
    args = _station_16()
    fast = _times_us(lambda: kernels.station_limits(*args), 5_000)
    slow = _times_us(lambda: reference.station_limits(*args), 400)
    row = Row(
        "limits tick, 16 modules / 4 connectors",
        "us",
        median(fast),
        percentile(fast, 99),
        median(slow),
        "numba vs reference",
    )
    return row, median(slow) / median(fast)


def _bench_map() -> tuple[Row, float]:
    s = sample_station(n_modules=2, n_connectors=1, voltage_v=800.0, series=True)
    rng = np.random.default_rng(3)
    volts = rng.uniform(100.0, 1_100.0, MAP_POINTS)
    powers = rng.uniform(-25_000.0, 25_000.0, MAP_POINTS)
    out = np.zeros((MAP_POINTS, L.E_N))
    codes = np.zeros((MAP_POINTS, 2), dtype=np.int64)
    args = (s.tab, s.lay, s.mod_type, s.mod_conn, s.mod_in, s.conn_in, 0, volts, powers)
    fast = [t / 1e3 for t in _times_us(lambda: kernels.envelope_vp(*args, out, codes), 15)]
    slow = [t / 1e3 for t in _times_us(lambda: reference.envelope_vp(*args, out, codes), 3)]
    row = Row(
        f"limits envelope map, {MAP_POINTS} V x P points",
        "ms",
        median(fast),
        percentile(fast, 99),
        median(slow),
        "2 BMPU series; numba vs reference",
    )
    return row, median(slow) / median(fast)


def _engine_tick(backend: str) -> Callable[[], object]:
    eng = LimitsEngine(16, 4, backend=backend)
    for c in range(4):
        eng.set_allocation(c, [4 * c + k for k in range(4)], "series" if c == 2 else "parallel")
    conn_ramp = RampLimiter(4, eng.connector_ramp_rate_w_per_s(), backend=backend)
    mod_ramp = RampLimiter(16, eng.module_ramp_rate_w_per_s, backend=backend)
    volts = np.array([380.0, 455.0, 760.0, 320.0])
    temps = np.full(16, 45.0)
    request = np.array([80.0, -60.0, 20.0, 10.0])

    def tick() -> object:
        lim = eng.compute(voltage_v=volts, temp_c=temps)
        target = conn_ramp.step(
            request, 0.01, voltage_v=volts, lower=lim.discharge_current_a,
            upper=lim.charge_current_a,
        )  # fmt: skip
        shares = eng.share(target)
        return mod_ramp.step(
            shares, 0.01, voltage_v=eng.module_voltage_v(),
            lower=lim.module_discharge_current_a, upper=lim.module_charge_current_a,
        )  # fmt: skip

    return tick


def _bench_engine() -> Row:
    fast = _times_us(_engine_tick("numba"), 3_000)
    slow = _times_us(_engine_tick("reference"), 300)
    return Row(
        "limits engine tick (compute+share+ramps)",
        "us",
        median(fast),
        percentile(fast, 99),
        median(slow),
        "16 modules; engine numba vs reference",
    )


_PROBE = """
import json, time
t0 = time.perf_counter()
from bptd.limits import kernels
from bptd.limits.samples import sample_station
t1 = time.perf_counter()
s = sample_station(n_modules=16, n_connectors=4)
t2 = time.perf_counter()
kernels.station_limits(s.tab, s.lay, s.mod_type, s.mod_conn, s.mod_in, s.conn_in,
                       s.conn_out, s.conn_code, s.mod_out, s.mod_code)
t3 = time.perf_counter()
kernels.warm_up()
t4 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_call_ms": (t3 - t2) * 1e3,
                  "all_kernels_ms": (t4 - t2) * 1e3}))
"""


def _bench_cold_start(runs: int = 5) -> tuple[Row, dict[str, float]]:
    env = dict(os.environ)
    # warm-up process: populate the on-disk cache (NUMBA_CACHE_DIR if set, else __pycache__)
    subprocess.run(
        [sys.executable, "-c", "from bptd.limits import kernels; kernels.warm_up()"],
        check=True,
        env=env,
    )
    samples = []
    for _ in range(runs):
        res = subprocess.run(
            [sys.executable, "-c", _PROBE], check=True, env=env, capture_output=True, text=True
        )
        samples.append(json.loads(res.stdout.strip().splitlines()[-1]))
    first = [s["first_call_ms"] for s in samples]
    figures = {
        "limits_cold_start_ms": median(first),
        "limits_cold_import_ms": median([s["import_ms"] for s in samples]),
        "limits_cold_all_kernels_ms": median([s["all_kernels_ms"] for s in samples]),
    }
    row = Row(
        "limits first call, fresh process, warm cache",
        "ms",
        median(first),
        percentile(first, 99),
        None,
        f"{runs} processes; import {figures['limits_cold_import_ms']:.0f} ms not included",
    )
    return row, figures


def run() -> tuple[list[Row], dict[str, float]]:
    kernels.warm_up()
    tick_row, tick_x = _bench_tick()
    map_row, map_x = _bench_map()
    engine_row = _bench_engine()
    cold_row, cold = _bench_cold_start()
    figures = {
        "limits_speedup": min(tick_x, map_x),
        "limits_speedup_tick": tick_x,
        "limits_speedup_map": map_x,
        "limits_tick_us": tick_row.median,
        "limits_engine_tick_us": engine_row.median,
        "limits_map_ms": map_row.median,
        **cold,
    }
    return [tick_row, map_row, engine_row, cold_row], figures


if __name__ == "__main__":
    from bench.common import format_table

    rows, figs = run()
    print(format_table(rows))
    print(json.dumps(figs, indent=2, sort_keys=True))
