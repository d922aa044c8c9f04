"""sd_notify and the watchdog against a fake NOTIFY_SOCKET."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bptd.service import SystemdNotifier, Watchdog


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def _messages(sock: socket.socket) -> list[dict[str, str]]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(4096).decode()
            out.append(dict(line.split("=", 1) for line in data.splitlines()))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


def test_ready_status_and_stopping_reach_systemd(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    n = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert n.ready("6 of 6 nodes operational")
    assert dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines()) == {
        "READY": "1",
        "STATUS": "6 of 6 nodes operational",
    }
    n.status("module 2 lost")
    assert sock.recv(4096) == b"STATUS=module 2 lost"
    n.stopping()
    assert b"STOPPING=1" in sock.recv(4096)
    n.close()


def test_without_systemd_nothing_is_sent() -> None:
    n = SystemdNotifier({})
    assert not n.enabled
    assert not n.ready("x")
    assert not Watchdog(n).loop_tick(0.0)


def test_watchdog_pings_at_half_the_interval_only_from_healthy_ticks(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    n = SystemdNotifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    )
    wd = Watchdog(n)
    assert wd.interval_s == 2.0
    t = 100.0
    pinged = []
    for _ in range(300):  # 3 s of 10 ms ticks
        t += 0.01
        if wd.loop_tick(t):
            pinged.append(t)
    assert len(pinged) == 3  # at t0 and every 1 s
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(pinged))
    msgs = _messages(sock)
    assert msgs == [{"WATCHDOG": "1"}] * 3
    # an unhealthy loop stops feeding the watchdog
    for _ in range(300):
        t += 0.01
        assert not wd.loop_tick(t, healthy=False)
    assert _messages(sock) == []
    n.close()


def test_watchdog_for_another_pid_is_ignored() -> None:
    n = SystemdNotifier(
        {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )
    assert n.watchdog_s is None


def test_abstract_socket_names_are_supported() -> None:
    name = f"bptd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        n = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert n.status("hello")
        assert sock.recv(100) == b"STATUS=hello"
        n.close()
    finally:
        sock.close()
