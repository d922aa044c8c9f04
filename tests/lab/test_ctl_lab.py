"""``bptctl record / pattern / report``: usage errors and a daemon that is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from bptd import ctl
from bptd.lab.record import write_rows

NOBODY = ["--timeout", "0.3"]


def dead(tmp_path: Path) -> list[str]:
    return ["--control", f"ipc://{tmp_path}/none.sock", "--telemetry",
            f"ipc://{tmp_path}/none-t.sock", *NOBODY]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["pattern"], "pattern needs the pattern"),
        (["pattern", "c", "connector=ccs"], "pattern needs the pattern"),
        (["pattern", "b"], "connector=NAME is required"),
        (["pattern", "b", "connector=ccs", "speed=3"], "unknown argument"),
        (["pattern", "b", "connector=ccs", "interval_s=0"], "interval_s"),
        (["pattern", "a", "connector=ccs", "direction=sideways"], "direction"),
        (["pattern", "b", "connector=ccs", "steady=2"], "steady"),
        (["pattern", "b", "connector=ccs", "--duration", "3"], "--duration"),
        (["status", "--output", "x"], "--output"),
        (["record", "--duration", "0"], "--duration"),
        (["report"], "one or more recordings"),
        (["report", "nowhere"], "no recording"),
        (["report", "x.csv", "bogus=1"], "unknown argument"),
    ],
)
def test_usage_errors_exit_2_before_asking_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    assert ctl.main([*dead(tmp_path), *args]) == ctl.EXIT_USAGE
    assert words in capsys.readouterr().err


def test_no_daemon_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert ctl.main([*dead(tmp_path), "pattern", "b", "connector=ccs", "--output", str(out)]) == 3
    assert "timeout" in capsys.readouterr().err and not out.exists()
    rec = tmp_path / "rec.csv"
    assert ctl.main([*dead(tmp_path), "record", "--output", str(rec)]) == 3
    assert "no telemetry" in capsys.readouterr().err
    assert rec.read_text().startswith("t,mono,topic,")


def test_report_needs_a_connector_when_the_recording_has_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rec.csv"
    write_rows(path, [("connector.ccs", {"mono": 1.0, "power_w": 0.0}),
                      ("connector.chademo", {"mono": 1.0, "power_w": 0.0})])  # fmt: skip
    assert ctl.main(["report", str(path), "--output", str(tmp_path / "r")]) == ctl.EXIT_USAGE
    assert "connector=NAME" in capsys.readouterr().err
    # named, it is analysed (no steps in it: empty tables, no plots of steps)
    assert ctl.main(["report", str(path), "connector=ccs", "--output",
                     str(tmp_path / "r")]) == 0  # fmt: skip
    assert (tmp_path / "r" / "report.md").is_file()
