"""Where bptd finds its shipped files (EDS, DBC, default config and profile)."""

from __future__ import annotations

import pathlib

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
EDS_DIR = PACKAGE_DIR / "eds"
DBC_DIR = PACKAGE_DIR / "dbc"
DATA_DIR = PACKAGE_DIR / "data"

DEFAULT_CONFIG = DATA_DIR / "reference.toml"
DEFAULT_PROFILE = DATA_DIR / "profile.toml"


def eds_path(name: str) -> pathlib.Path:
    """Path of a shipped EDS by file name, or ``name`` itself when it is a path."""
    p = pathlib.Path(name)
    if p.is_absolute() or p.parent != pathlib.Path("."):
        return p
    return EDS_DIR / name
