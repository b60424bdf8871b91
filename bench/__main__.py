"""`python -m bench` (what `make bench` runs): the fleet table at 1,000 and 10,000 SIMs (bench/fleet.py), with a
trivial program's first `up` and no-change preview beside ours (bench/trivial.py) and the ratio, written to
bench/results/fleet.md and fleet.json. Loopback only, every command bounded; the 10,000 size takes a while.

The other benchmarks run on their own: `python -m bench.reconcile`, `bench.readability`, `bench.snapshot`,
`bench.emulator_load`. `python -m bench --sims 1000` passes its arguments to bench.fleet.
"""

import sys

from bench import fleet

fleet.main(sys.argv[1:] or ["--sims", "1000", "10000"])
