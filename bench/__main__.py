"""Run every benchmark in turn (loopback only, bounded)."""

import importlib
import sys

for name in ("bench.emulator_load", "bench.snapshot", "bench.reconcile"):
    print(f"\n##### {name}", flush=True)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        print(f"skipped: {exc}")
        continue
    module.main([]) if "argv" in module.main.__code__.co_varnames else module.main()
    sys.stdout.flush()
