"""systemd integration: sd_notify (READY, STATUS, STOPPING) and a watchdog fed by the loop.

The protocol is a datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``NOTIFY_SOCKET`` (an abstract socket when it starts with ``@``). Without that variable
every call does nothing, so the daemon runs the same outside systemd.

The watchdog is fed only from the control loop: :meth:`Watchdog.loop_tick` is called at the
end of every healthy tick and pings at half the ``WatchdogSec`` interval. A loop that stalls
or reports itself unhealthy stops the pings, and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages; silent when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path:
            self.address = "\0" + path[1:] if path.startswith("@") else path
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines; returns False when there is nobody to tell."""
        if self.address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        text = "\n".join(f"{k}={v}" for k, v in fields.items())
        try:
            self._sock.sendto(text.encode(), self.address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc))
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Watchdog:
    """Pings systemd's watchdog at half its interval, only from healthy loop ticks."""

    def __init__(self, notifier: SystemdNotifier) -> None:
        self.notifier = notifier
        self.interval_s = notifier.watchdog_s
        self._last_ping: float | None = None
        self.pings = 0

    def loop_tick(self, now: float, healthy: bool = True) -> bool:
        """Call at the end of each control-loop tick; returns True when it pinged."""
        if self.interval_s is None or not healthy:
            return False
        if self._last_ping is not None and now - self._last_ping < self.interval_s / 2:
            return False
        if self.notifier.notify(WATCHDOG=1):
            self._last_ping = now
            self.pings += 1
            return True
        return False
