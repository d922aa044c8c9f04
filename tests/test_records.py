"""Session records survive a crash: kill -9 mid-session, then recover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bptd.records import SessionJournal


def test_a_whole_session_is_recorded(tmp_path: Path) -> None:
    with SessionJournal(tmp_path, fsync_interval_s=10) as j:
        sid = j.start("ccs", now=0.0, vehicle="bpt")
        assert not j.progress(sid, 5.0, 10.0, 0.0)  # within the interval: not written
        assert j.progress(sid, 10.0, 20.0, 1.0, 10000.0, -5000.0)
        j.fault(sid, "module_overtemp")
        j.stop(sid, "ev_request", 25.0, 3.5, 10000.0, -9000.0)
    (rec,) = SessionJournal(tmp_path).sessions()
    assert (rec.connector, rec.reason, rec.open) == ("ccs", "ev_request", False)
    assert (rec.energy_import_wh, rec.energy_export_wh) == (25.0, 3.5)
    assert rec.faults == ["module_overtemp"]
    assert rec.extra == {"vehicle": "bpt"}


WRITER = textwrap.dedent("""
    import sys
    from bptd import logs
    from bptd.records import SessionJournal
    logs.configure("warning")
    j = SessionJournal(sys.argv[1], fsync_interval_s=0)
    done = j.start("ccs", 0.0)
    j.stop(done, "ev_request", 5.0, 0.0)
    sid = j.start("chademo", 0.0)
    for k in range(1, 51):
        j.progress(sid, float(k), energy_import_wh=k * 1.5, energy_export_wh=k * 0.5)
    print("ready", flush=True)
    sys.stdin.readline()   # wait to be killed
""")


def test_kill_9_during_a_session_loses_nothing(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert proc.stdin is not None
    proc.stdin.close()
    j = SessionJournal(tmp_path)
    closed = j.recover()
    assert [s.connector for s in closed] == ["chademo"]
    by_conn = {s.connector: s for s in j.sessions()}
    assert by_conn["ccs"].reason == "ev_request" and by_conn["ccs"].energy_import_wh == 5.0
    assert by_conn["chademo"].reason == "interrupted"
    assert by_conn["chademo"].energy_import_wh == pytest.approx(75.0)
    assert by_conn["chademo"].energy_export_wh == pytest.approx(25.0)
    assert j.recover() == []  # recovering twice changes nothing


def test_a_torn_last_line_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    with SessionJournal(tmp_path) as j:
        sid = j.start("ccs", 0.0)
        j.progress(sid, 20.0, 12.0, 0.0)
    with open(tmp_path / "sessions.jsonl", "ab") as f:
        f.write(b'{"type":"progress","session_id":"' + sid.encode() + b'","energy_imp')
    j = SessionJournal(tmp_path)
    (s,) = j.recover()
    assert s.energy_import_wh == 12.0 and s.reason == "interrupted"
    text = (tmp_path / "sessions.jsonl").read_text()
    assert text.endswith("\n") and 'energy_imp"' not in text.replace('"energy_import_wh"', "")
    assert len(j.sessions()) == 1


def test_non_finite_energy_is_refused(tmp_path: Path) -> None:
    with SessionJournal(tmp_path) as j:
        sid = j.start("ccs", 0.0)
        with pytest.raises(ValueError):
            j.progress(sid, 100.0, float("nan"), 0.0)
        assert j.sessions()[0].energy_import_wh == 0.0
