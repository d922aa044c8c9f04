"""Bus-load accounting: frame lengths, the sliding-window meter, the station estimate."""

from __future__ import annotations

import dataclasses
import threading

import can
import pytest

from bptd.busload import (
    BusLoadMeter,
    LoadEstimate,
    LoadItem,
    estimate_default_load,
    frame_bits,
)
from bptd.config import Config, load_config
from bptd.profile import Profile, load_profile


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile()


# --------------------------------------------------------------------------- frame length


@pytest.mark.parametrize(
    ("dlc", "nominal", "worst"),
    [
        (0, 47, 47 + 8),  # 34 stuffable bits -> 8 stuff bits
        (1, 55, 55 + 10),  # 42 -> 10
        (8, 111, 135),  # 98 -> 24
    ],
)
def test_standard_frame_bits(dlc: int, nominal: int, worst: int) -> None:
    assert frame_bits(dlc, stuffing="none") == nominal
    assert frame_bits(dlc) == worst


def test_extended_frame_bits() -> None:
    assert frame_bits(0, extended=True, stuffing="none") == 67
    assert frame_bits(8, extended=True, stuffing="none") == 131
    assert frame_bits(8, extended=True) == 131 + (54 + 64 - 1) // 4 == 160


def test_frame_bits_rejects_what_classical_can_cannot_carry() -> None:
    with pytest.raises(ValueError):
        frame_bits(9)
    with pytest.raises(ValueError):
        frame_bits(-1)
    with pytest.raises(ValueError):
        frame_bits(8, stuffing="best")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- meter


def _feed(meter: BusLoadMeter, n: int, period: float, dlc: int = 8, t0: float = 0.0) -> None:
    for k in range(n):
        meter.add(0x1BE, dlc, False, t0 + k * period)


def test_meter_rates_over_a_full_window() -> None:
    meter = BusLoadMeter(bitrate=500_000, window_s=1.0)
    _feed(meter, 100, 0.01)  # t = 0.00 .. 0.99
    r = meter.reading(now=0.995)
    assert r.frames == 100
    assert r.frames_per_s == pytest.approx(100.0)
    assert r.bits_per_s == pytest.approx(100 * 135)
    assert r.percent == pytest.approx(100 * 135 / 500_000 * 100)  # 2.7 %
    assert r.percent_nominal == pytest.approx(100 * 111 / 500_000 * 100)


def test_meter_window_slides_but_totals_stay() -> None:
    meter = BusLoadMeter(window_s=1.0)
    _feed(meter, 100, 0.01)
    r = meter.reading(now=1.505)  # window (0.505, 1.505]: t = 0.51 .. 0.99
    assert r.frames == 49
    assert r.frames_per_s == pytest.approx(49.0)
    assert r.total_frames == 100 and r.total_bits == 100 * 135
    later = meter.reading(now=10.0)
    assert later.frames == 0 and later.percent == 0.0
    assert later.total_frames == 100


def test_meter_does_not_count_frames_after_now() -> None:
    meter = BusLoadMeter(window_s=1.0)
    _feed(meter, 10, 0.1)  # t = 0.0 .. 0.9
    assert meter.reading(now=0.45).frames == 5


def test_meter_start_shortens_the_first_window() -> None:
    meter = BusLoadMeter(window_s=1.0, start=0.0)
    _feed(meter, 10, 0.01)  # 10 frames within the first 0.1 s
    r = meter.reading(now=0.1)
    assert r.window_s == pytest.approx(0.1)
    assert r.frames_per_s == pytest.approx(100.0)
    assert meter.reading(now=0.0).frames_per_s == 0.0


def test_meter_counts_per_id_and_resets() -> None:
    meter = BusLoadMeter()
    meter.add(0x1BE, 8, False, 0.0)
    meter.add(0x1BE, 8, False, 0.1)
    meter.add(0x18FF50E5, 8, True, 0.2)
    assert meter.counts() == {(0x1BE, False): 2, (0x18FF50E5, True): 1}
    assert meter.reading(0.5).bits_per_s == pytest.approx(2 * 135 + 160)
    meter.reset(start=1.0)
    assert meter.counts() == {} and meter.reading(1.5).total_frames == 0


def test_meter_takes_can_messages() -> None:
    meter = BusLoadMeter()
    meter(can.Message(arbitration_id=0x73E, data=[5], is_extended_id=False, timestamp=1.0))
    meter(
        can.Message(
            arbitration_id=0x73E, is_extended_id=False, is_remote_frame=True, dlc=1, timestamp=1.1
        )
    )
    meter(can.Message(is_error_frame=True, timestamp=1.2))
    r = meter.reading(now=1.5)
    assert r.total_frames == 2
    assert r.total_bits == frame_bits(1) + frame_bits(0)


def test_meter_is_safe_to_feed_from_many_threads() -> None:
    meter = BusLoadMeter(window_s=100.0)
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        barrier.wait()
        for k in range(2500):
            meter.add(0x180 + i, 8, False, k * 0.001)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r = meter.reading(now=50.0)
    assert r.total_frames == r.frames == 10_000
    assert r.total_bits == 10_000 * 135
    assert sum(meter.counts().values()) == 10_000


# --------------------------------------------------------------------------- station estimate


def _item(est: LoadEstimate, frame: str) -> LoadItem:
    (item,) = [i for i in est.items if i.frame == frame]
    return item


def test_reference_station_estimate_by_hand(config: Config, profile: Profile) -> None:
    est = estimate_default_load(config, profile)
    assert (est.n_modules, est.n_connectors) == (2, 2)
    # DC/DC status at its 50 ms event timer; setpoints at the 50 ms inhibit (worst) and the
    # 100 ms refresh (steady); RPDO2 of the AFE has no deadline so stays at the refresh rate
    assert (_item(est, "dcdc TPDO1").worst_hz, _item(est, "dcdc TPDO1").steady_hz) == (20, 20)
    assert (_item(est, "dcdc RPDO1").worst_hz, _item(est, "dcdc RPDO1").steady_hz) == (20, 10)
    assert _item(est, "afe RPDO2").worst_hz == 10
    assert _item(est, "chipset RPDO2").dlc == 2
    assert _item(est, "supervisor heartbeat").worst_hz == 1
    # per module, steady: RPDOs 3 x 10 Hz x 135, TPDOs (20 + 2 + 5 + 10) x 135 + 2 x 2 x 115,
    # heartbeats 2 x 10 x 65; per chipset: 10 x (135 + 75 + 135 + 135 + 95 + 65)
    module_steady = 3 * 10 * 135 + 37 * 135 + 4 * 115 + 2 * 10 * 65
    chipset_steady = 10 * (135 + 75 + 135 + 135 + 95 + 65)
    steady = 2 * module_steady + 2 * chipset_steady + 65
    assert est.steady_bps == pytest.approx(steady)
    # worst: the three setpoint RPDOs per module/chipset go from 10 Hz to 20 Hz
    worst = steady + (2 * 2 + 2) * 10 * 135
    assert est.worst_bps == pytest.approx(worst)
    assert est.worst_percent == pytest.approx(100 * worst / 500_000)


def test_estimate_with_16_synthesized_modules(config: Config, profile: Profile) -> None:
    est = estimate_default_load(config, profile, n_modules=16)
    assert est.n_modules == 16
    assert _item(est, "dcdc heartbeat").count == 16
    assert _item(est, "afe TPDO4").count == 16
    ref = estimate_default_load(config, profile)
    assert est.steady_bps > ref.steady_bps


def test_16_modules_at_default_rates_stay_below_half_the_bus(
    config: Config, profile: Profile
) -> None:
    """SPEC target: <= 50 % of 500 kbit/s with 16 modules at the default PDO rates."""
    assert estimate_default_load(config, profile, n_modules=16).steady_percent < 50.0


def test_16_modules_worst_case_setpoint_traffic_below_half_the_bus(
    config: Config, profile: Profile
) -> None:
    assert estimate_default_load(config, profile, n_modules=16).worst_percent < 50.0


def test_a_20_ms_rpdo_inhibit_would_overload_16_modules(config: Config, profile: Profile) -> None:
    faster = config.replace(can=dataclasses.replace(config.can, rpdo_inhibit_ms=20))
    assert estimate_default_load(faster, profile, n_modules=16).worst_percent > 50.0


def test_a_1_mbit_bus_carries_16_modules_worst_case(config: Config, profile: Profile) -> None:
    est = estimate_default_load(config, profile, n_modules=16, bitrate=1_000_000)
    assert est.worst_percent < 50.0


def test_markdown_table_lists_every_item(config: Config, profile: Profile) -> None:
    est = estimate_default_load(config, profile)
    table = est.markdown()
    assert table.count("\n") == len(est.items) + 2
    assert f"**{est.worst_percent:.1f}**" in table
