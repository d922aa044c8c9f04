"""`python -m bench`: run every benchmark, print one table, write bench/results.json.

Each module in BENCHES has ``run() -> tuple[list[Row], dict[str, float]]``: rows for the
table and figures for ``results.json``. A benchmark never fails on timing.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
import traceback

from bench.common import format_table

BENCHES = [
    "bench.bench_limits",
    "bench.bench_fieldbus",
    "bench.bench_daemon",
    "bench.bench_safety",
]


def main() -> int:
    rows = []
    results: dict[str, float] = {}
    failed = []
    for name in BENCHES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not written yet
            raise
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            r, figures = mod.run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        rows.extend(r)
        results.update(figures)
    print(format_table(rows))
    print()
    for key in sorted(results):
        print(f"{key:32} {results[key]:.4g}")
    out = pathlib.Path(__file__).with_name("results.json")
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
