"""The ISO 15118 rig: bptd in-process on the virtual station (without its built-in EVCC),
``bptd-iso15118`` on one end of a fresh veth pair and the ``iso15118`` package's own EVCC
(tests/iso15118/ev_vehicle.py) on the other, both in the frontend's virtual environment.

The virtual environment is made by tools/setup.d/iso15118.sh (``make test`` runs it); a
missing one fails these tests with that hint, it never skips them.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iso_rig import ROOT, Rig

from bptd.config import Config
from station_rig import running

VENV = Path(os.environ.get("BPTD_ISO15118_VENV", ROOT / ".venv-iso15118"))
SETUP_HINT = "run `bash tools/setup.d/iso15118.sh` as root from the repository (make test does)"

_names = itertools.count()


@pytest.fixture(scope="session")
def iso_python() -> Path:
    """The frontend's interpreter, with iso15118 0.31.2, bptd and a Java runtime."""
    python = VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no ISO 15118 virtual environment at {VENV}: {SETUP_HINT}", pytrace=False)
    if shutil.which("java") is None:
        pytest.fail(f"no Java runtime for the iso15118 EXI codec: {SETUP_HINT}", pytrace=False)
    probe = subprocess.run(
        [str(python), "-c", "import iso15118, bptd.iso15118.controller"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.fail(f"{VENV} is incomplete ({probe.stderr.strip()[-500:]}): {SETUP_HINT}")
    return python


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _link_local_ready(iface: str) -> bool:
    out = subprocess.run(
        ["ip", "-6", "addr", "show", "dev", iface], capture_output=True, text=True, timeout=10
    ).stdout
    return any("fe80::" in line and "tentative" not in line for line in out.splitlines())


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    """A fresh veth pair (SECC end, EV end), both up with an IPv6 link-local address;
    deleted afterwards, also when the test fails."""
    n = f"{os.getpid() % 10000}x{next(_names)}"
    secc, ev = f"bsecc{n}", f"bev{n}"
    _ip("link", "add", secc, "type", "veth", "peer", "name", ev)
    try:
        for iface in (secc, ev):
            # no duplicate address detection on a private pair: the address is usable at once
            Path(f"/proc/sys/net/ipv6/conf/{iface}/accept_dad").write_text("0\n")
            _ip("link", "set", iface, "up")
        deadline = time.monotonic() + 15.0
        while not (_link_local_ready(secc) and _link_local_ready(ev)):
            assert time.monotonic() < deadline, f"no IPv6 link-local address on {secc}/{ev}"
            time.sleep(0.05)
        yield secc, ev
    finally:
        subprocess.run(["ip", "link", "del", secc], capture_output=True, timeout=10)


@pytest.fixture
def rig(
    station_config: Config,
    iso_python: Path,
    veth: tuple[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Rig]:
    marker = request.node.get_closest_marker("authorize")
    authorize = marker.args[0] if marker else "self"
    with running(station_config, tmp_path, evcc=False) as station:
        r = Rig(station, iso_python, veth, tmp_path, authorize)
        try:
            yield r
        finally:
            rep = getattr(request.node, "rep_call", None)
            codes = r.close(failed=rep is None or rep.failed)
    assert codes[-1] == 0, f"bptd-iso15118 exit code on SIGTERM: {codes[-1]}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "authorize(mode): bptd-iso15118's --authorize for this test (default self)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
