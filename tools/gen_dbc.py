"""Write the station DBC (``dbc/bptd-station.dbc``) from the EDS PDO mappings (``make dbc``).

Usage: ``gen_dbc.py [--config bptd.toml] [--modules N] [--output FILE]``. Without options it
writes the reference station's DBC, the file the drift test compares against.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))

from bptd.config import load_config  # noqa: E402
from bptd.dbcgen import generate_dbc  # noqa: E402
from bptd.profile import load_profile  # noqa: E402

DEFAULT_OUTPUT = ROOT / "dbc" / "bptd-station.dbc"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="station config (default: the reference station)")
    parser.add_argument("--modules", type=int, help="synthesize modules 1..N instead")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    profile = load_profile(config.station.profile or None)
    text = generate_dbc(config, profile, n_modules=args.modules)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    old = args.output.read_bytes().decode() if args.output.exists() else None
    if old == text:
        print(f"{args.output}: up to date")
    else:
        args.output.write_bytes(text.encode())  # keep cantools' CRLF line ends
        print(f"{args.output}: written ({text.count(chr(10) + 'BO_ ')} messages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
