"""Run every benchmark in turn with its defaults (loopback only, bounded): `python -m bench`."""

import importlib

for name in ("bench.emulator_load", "bench.snapshot", "bench.reconcile"):
    print(f"\n##### {name}", flush=True)
    importlib.import_module(name).main([])
