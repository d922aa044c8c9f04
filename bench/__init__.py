"""Benchmarks of bptd: `make bench` runs every module listed in BENCHES."""
