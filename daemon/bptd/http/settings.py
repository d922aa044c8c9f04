"""bptd-http's configuration: a TOML file (``--config``), command-line options over it.

```toml
[http]
bind = "127.0.0.1"          # an IP address (or "localhost"); 0.0.0.0 / :: to serve a network
port = 8333                 # the vendor GUI backend's port
control = "ipc:///run/bptd/control.sock"
telemetry = ""              # default: next to control
read_auth = false           # true: reads (page, GET, events) need credentials too
history_s = 600             # seconds of measurements kept for the page's plots

[http.users]                # name = hash (bptd-http hash-password)
lab = "scrypt$n=16384,r=8,p=1$...$..."

[http.secc]                 # vendor SECC ids -> bptd connectors
EVIS_A_CCS = "ccs"
EVIS_B_CHA = "chademo"
```

Every problem is collected into one :class:`SettingsError` (exit code 2).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bptd.api.client import telemetry_endpoint
from bptd.http.passwords import HashError, check_hash

DEFAULT_CONTROL = "ipc:///run/bptd/control.sock"
DEFAULT_SECC = {"EVIS_A_CCS": "ccs", "EVIS_B_CHA": "chademo"}
KEYS = {
    "bind",
    "port",
    "control",
    "telemetry",
    "read_auth",
    "history_s",
    "users",
    "secc",
    "server_key",
}
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class SettingsError(ValueError):
    """A bad configuration: the message names every problem."""


@dataclass(frozen=True)
class Settings:
    bind: str = "127.0.0.1"
    port: int = 8333
    control: str = DEFAULT_CONTROL
    telemetry: str = ""
    server_key: str | None = None
    read_auth: bool = False
    history_s: float = 600.0
    users: dict[str, str] = field(default_factory=dict)
    secc: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SECC))


def check_bind(bind: Any) -> str | None:
    """None if ``bind`` is a usable listen address, else what is wrong."""
    if not isinstance(bind, str) or not bind:
        return "bind must be an IP address such as 127.0.0.1"
    if bind == "localhost":
        return None
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        return f"bind {bind[:60]!r} is not an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0)"
    return None


def load(path: str | None, overrides: dict[str, Any]) -> Settings:
    """Settings from the file at ``path`` (optional) with ``overrides`` (non-None CLI values)."""
    raw: dict[str, Any] = {}
    if path:
        try:
            with open(Path(path), "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path} is not valid TOML: {exc}") from None
        section = doc.get("http", {})
        if not isinstance(section, dict):
            raise SettingsError(f"{path}: [http] must be a table")
        raw.update(section)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    errors: list[str] = []
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        errors.append(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    out: dict[str, Any] = {}
    bind = raw.get("bind", Settings.bind)
    problem = check_bind(bind)
    if problem:
        errors.append(problem)
    out["bind"] = bind
    port = raw.get("port", Settings.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        errors.append(f"port must be an integer 0..65535, not {port!r}")
    out["port"] = port
    for key in ("control", "telemetry", "server_key"):
        if key in raw and not isinstance(raw[key], str):
            errors.append(f"{key} must be a string")
    out["control"] = raw.get("control") or DEFAULT_CONTROL
    if isinstance(out["control"], str) and not re.match(r"^(ipc|tcp)://.", out["control"]):
        errors.append(f"control {out['control']!r} must be an ipc:// or tcp:// endpoint")
    out["server_key"] = raw.get("server_key") or None
    telemetry = raw.get("telemetry") or ""
    if not telemetry and isinstance(out["control"], str):
        try:
            telemetry = telemetry_endpoint(out["control"])
        except ValueError as exc:
            errors.append(str(exc))
    out["telemetry"] = telemetry
    read_auth = raw.get("read_auth", False)
    if not isinstance(read_auth, bool):
        errors.append("read_auth must be true or false")
    out["read_auth"] = read_auth
    history = raw.get("history_s", Settings.history_s)
    if (
        isinstance(history, bool)
        or not isinstance(history, int | float)
        or not (10 <= history <= 86400)
    ):
        errors.append("history_s must be a number of seconds in 10..86400")
    out["history_s"] = float(history) if isinstance(history, int | float) else 600.0
    users = raw.get("users", {})
    if not isinstance(users, dict):
        errors.append("users must be a table of name = hash")
        users = {}
    for name, h in users.items():
        if not NAME.match(name):
            errors.append(f"user name {name[:40]!r}: letters, digits, _ . @ - only")
        try:
            check_hash(h)
        except HashError as exc:
            errors.append(f"users.{name}: {exc}")
    out["users"] = dict(users)
    secc = raw.get("secc", DEFAULT_SECC)
    if not isinstance(secc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in secc.items()
    ):
        errors.append("secc must be a table of vendor id = connector name")
        secc = dict(DEFAULT_SECC)
    out["secc"] = dict(secc)
    if out["read_auth"] is True and not users:
        errors.append("read_auth = true needs at least one user")
    if errors:
        raise SettingsError("; ".join(errors))
    return Settings(**out)
