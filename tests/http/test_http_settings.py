"""Password hashes, the configuration, and the command line (exit code 2, one message)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from http_rig import free_port, write_config

from bptd.http.passwords import HashError, Verifier, make, parse
from bptd.http.settings import SettingsError, load


def test_hash_roundtrip_and_verifier() -> None:
    h = make("s3cret", n=1024)
    assert h.startswith("scrypt$n=1024,r=8,p=1$")
    assert parse(h).matches("s3cret") and not parse(h).matches("s3cret ")
    v = Verifier({"lab": h})
    assert v.known("lab", "s3cret") is None  # not verified yet: needs the derivation
    assert v.verify("lab", "s3cret")
    assert v.known("lab", "s3cret") is True
    assert not v.verify("lab", "wrong") and v.known("lab", "wrong") is None
    assert v.known("nobody", "s3cret") is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plain-password", "expected scrypt"),
        ("bcrypt$x$y$z", "unknown scheme 'bcrypt'"),
        ("scrypt$n=1000,r=8,p=1$c2FsdHNhbHQ$" + "A" * 43, "power of two"),
        ("scrypt$n=1024,r=8$c2FsdHNhbHQ$" + "A" * 43, "need n, r and p"),
        ("scrypt$n=1024,r=8,p=1$!!$" + "A" * 43, "salt is not base64"),
        ("scrypt$n=1024,r=8,p=1$c2FsdHNhbHQ$AAAA", "16..64 bytes"),
    ],
)
def test_bad_hashes_are_named(text: str, message: str) -> None:
    with pytest.raises(HashError, match=message):
        parse(text)


def test_settings_defaults_and_overrides(tmp_path: Path) -> None:
    s = load(None, {})
    assert (s.bind, s.port, s.read_auth, s.users) == ("127.0.0.1", 8333, False, {})
    assert s.telemetry == "ipc:///run/bptd/telemetry.sock"
    assert s.secc == {"EVIS_A_CCS": "ccs", "EVIS_B_CHA": "chademo"}
    path = write_config(tmp_path / "h.toml", 9000, read_auth=True)
    s = load(str(path), {"port": 9001, "bind": None})
    assert s.port == 9001 and s.read_auth and list(s.users) == ["lab"]


def test_every_problem_in_one_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[http]\nbind = "example.org"\nport = 70000\nlisten = 1\n'
                    '[http.users]\nlab = "hunter2"\n')  # fmt: skip
    with pytest.raises(SettingsError) as err:
        load(str(path), {})
    text = str(err.value)
    for part in ("unknown setting(s) listen", "not an IP address", "port must be",
                 "users.lab: expected scrypt"):  # fmt: skip
        assert part in text, text


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bptd.http", *args], input=stdin, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[http]\nbind = "not-an-address"\n', "bind 'not-an-address' is not an IP address"),
        ('[http.users]\nlab = "plain"\n', "users.lab: expected scrypt"),
        ("[http\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_with_one_message(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "http.toml"
    path.write_text(toml)
    res = run_cli("--config", str(path))
    assert res.returncode == 2, res
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert res.stdout == ""


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    res = run_cli("--config", str(tmp_path / "nope.toml"))
    assert res.returncode == 2 and "cannot read" in res.stderr


def test_hash_password_command() -> None:
    res = run_cli("hash-password", "--stdin", stdin="pass\n")
    assert res.returncode == 0, res.stderr
    assert parse(res.stdout.strip()).matches("pass")
    assert run_cli("hash-password", "--stdin", stdin="\n").returncode == 2


def test_sigterm_while_waiting_for_bptd(tmp_path: Path) -> None:
    """No daemon yet: it waits (and says so), and SIGTERM still stops it at once."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bptd.http", "--port", str(free_port()), "--log-format", "json",
         "--control", f"ipc://{tmp_path}/control.sock"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the first log line: waiting for bptd
    assert "http_waiting_for_bptd" in line, line
    proc.terminate()  # while it waits for bptd
    assert proc.wait(15) == 0
