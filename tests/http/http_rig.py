"""The HTTP rig: bptd-http as its own process beside the daemon of tests/station_rig.py,
reached over real HTTP on 127.0.0.1 (a free port per test)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from bptd.http.passwords import make
from station_rig import Station, stop_frontend

USER = "lab"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path, port: int, *, users: dict[str, str] | None = None, **extra: Any
) -> Path:
    users = {USER: PASSWORD} if users is None else users
    lines = ["[http]", f"port = {port}"]
    for key, value in extra.items():
        lines.append(f"{key} = {_toml(value)}")
    lines.append("[http.users]")
    lines += [f'{name} = "{make(pw, n=1024)}"' for name, pw in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


class Http:
    """bptd-http as a process (``python -m bptd.http``)."""

    def __init__(self, station: Station, where: Path, **settings: Any) -> None:
        self.station = station
        self.where = where
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.auth = (USER, PASSWORD)
        self.config = write_config(where / "http.toml", self.port, **settings)
        self.log = where / "bptd-http.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> Http:
        args = [
            sys.executable, "-m", "bptd.http",
            "--config", str(self.config),
            "--control", self.station.control,
            "--telemetry", self.station.telemetry_endpoint,
            "--log-format", "console",
        ]  # fmt: skip
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(f"{self.base}/api/ping", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"bptd-http exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"bptd-http not answering in {timeout_s} s:\n{self.output()}")
            time.sleep(0.05)  # polling interval of the wait above

    def url(self, path: str) -> str:
        return self.base + path

    def put(self, path: str, body: Any, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.auth)
        return requests.put(self.url(path), json=body, timeout=15, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.auth)
        return requests.post(self.url(path), json=body, timeout=15, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url(path), timeout=15, **kw)

    def stop(self) -> int | None:
        """SIGTERM, as systemd stops it."""
        return stop_frontend(self.proc, "bptd-http", self.output)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-20000:] if self.log.exists() else ""
