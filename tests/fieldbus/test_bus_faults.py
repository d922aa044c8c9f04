"""Bus faults: bus-off error frame and notifier death; the master recovers in-process."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import can
from tests.fieldbus.helpers import Loop, fast_config

from bptd.fieldbus import BusFault, BusRecovered, Fieldbus, NodeState
from bptd.sim import VirtualStation


def _lost_everything(loop: Loop) -> bool:
    return all(s is NodeState.LOST for s in loop.fb.states().values())


def test_bus_off_error_frame_loses_all_nodes_then_recovers(
    running: Loop, station: VirtualStation
) -> None:
    station.fault(kind="bus_off")
    assert running.wait_until(lambda: bool(running.of(BusFault)), 5.0)
    fault = running.of(BusFault)[0]
    assert isinstance(fault, BusFault) and "bus-off" in fault.reason
    assert _lost_everything(running)
    assert not running.fb.bus_up
    assert running.wait_until(lambda: bool(running.of(BusRecovered)), 10.0)
    assert running.wait_until(running.all_operational, 15.0), running.fb.states()
    assert all(running.fb.node_status(k).boots == 2 for k in running.fb.node_keys())


class FlakyBus(can.BusABC):
    """A virtual bus whose receive raises once when armed (a dying interface)."""

    def __init__(self, channel: str, **kwargs: Any) -> None:
        self._inner = can.Bus(interface="virtual", channel=channel, receive_own_messages=True)
        self.armed = threading.Event()
        super().__init__(channel=channel, **kwargs)
        self.channel_info = f"flaky {channel}"

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self._inner.send(msg, timeout)

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        if self.armed.is_set():
            self.armed.clear()
            raise can.CanOperationError("interface went down")
        return self._inner.recv(timeout), False

    def shutdown(self) -> None:
        self._inner.shutdown()
        super().shutdown()


def test_notifier_death_recovers_without_restarting() -> None:
    channel = f"bptd-test-{uuid.uuid4()}"
    cfg = fast_config()
    bus = FlakyBus(channel)
    try:
        with VirtualStation(cfg, f"virtual:{channel}"), Fieldbus(cfg, bus=bus) as fb:
            loop = Loop(fb)
            assert loop.wait_until(loop.all_operational, 10.0), fb.states()
            bus.armed.set()
            assert loop.wait_until(lambda: bool(loop.of(BusFault)), 5.0)
            fault = loop.of(BusFault)[0]
            assert isinstance(fault, BusFault)
            assert "notifier thread died" in fault.reason
            assert "interface went down" in fault.reason
            assert loop.wait_until(lambda: bool(loop.of(BusRecovered)), 10.0)
            assert loop.wait_until(loop.all_operational, 15.0), fb.states()
    finally:
        bus.shutdown()


def test_a_bus_that_cannot_be_opened_is_retried_not_raised() -> None:
    cfg = fast_config()
    attempts: list[int] = []
    channel = f"bptd-test-{uuid.uuid4()}"

    def factory() -> can.BusABC:
        attempts.append(1)
        if len(attempts) < 3:
            raise can.CanInitializationError("no such interface")
        return can.Bus(interface="virtual", channel=channel)

    with VirtualStation(cfg, f"virtual:{channel}"), Fieldbus(cfg, bus=factory) as fb:
        loop = Loop(fb)
        assert loop.wait_until(lambda: bool(loop.of(BusRecovered)), 10.0)
        assert "cannot open the bus" in loop.of(BusFault)[0].reason  # type: ignore[attr-defined]
        assert loop.wait_until(loop.all_operational, 10.0), fb.states()
        assert len(attempts) == 3
