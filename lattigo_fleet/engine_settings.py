"""The Pulumi engine settings a fleet needs, written once: the Makefile, the docs (docs/scale.md), the CI
templates, the demo, the tests and the benchmarks all use these, and the program warns when a large fleet runs
without them.

- `PULUMI_SKIP_CHECKPOINTS=true`: the file (DIY) backend otherwise rewrites the whole state before and after
  every changed resource, O(N) per step and so O(N²) per run (500 -> 1,000 SIMs went 66 s -> 267 s). The
  trade-off: a run that dies writes no state for its own changes. That is safe here, because every run plans
  against the live account: the next run adopts the SIMs the dead one activated and finds nothing left to
  send for the ones it changed (tests/e2e/test_scale_settings.py kills a run to show it).
- `PULUMI_PARALLEL`: how many resources the engine works on at once (default 4 x cores = 8 here). A bulk
  request can only hold SIMs that are in flight together, so it is set to the provider host's thread pool.
- `PULUMI_PARALLEL_DIFF=true`: the engine diffs resources in parallel instead of one at a time.
- `GOGC=60`: the engine (a Go program) collects its garbage when its heap has grown 60% since the last
  collection, not 100%. Most of its memory at fleet size is garbage between collections: at 20,000 SIMs its
  peak went 1.29 -> 1.01 GB (all processes 1.64 -> 1.42 GB) for about 15% more of the engine's CPU. It applies
  to any Go program started with it (harmless: only when each collects).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# The provider host's gRPC thread pool (lattigo_fleet/provider_host.py), here so that printing the settings
# (`make env`, in every CI job) loads no Pulumi SDK. The SDK's own server has 4 threads, so at most 4 SIMs can
# ever share a bulk request; ours is sized for fleets: an operation waiting for its batch holds a thread, so the
# SIMs of a full bulk request (the API takes 500) can all wait for it only with at least 500. With 256, the
# issue's 1,000-SIM change (500 moves to one cost center) took two requests for them. The engine's parallelism
# (PULUMI_PARALLEL) is set to the same number.
PROVIDER_WORKERS = 512

ENGINE_ENV: dict[str, str] = {
    "PULUMI_SKIP_CHECKPOINTS": "true",
    "PULUMI_PARALLEL": str(PROVIDER_WORKERS),
    "PULUMI_PARALLEL_DIFF": "true",
    "GOGC": "60",
}
# Above this many SIMs, a run without them is slow enough to say so.
LARGE_FLEET = 200


def missing(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    return [f"{name}={value}" for name, value in ENGINE_ENV.items() if env.get(name, "").lower() != value]


def advice(fleet_size: int, env: Mapping[str, str] | None = None) -> str | None:
    """A warning for a large fleet run without the settings, or None."""
    lacking = missing(env)
    if fleet_size < LARGE_FLEET or not lacking:
        return None
    return (
        f"{fleet_size} SIMs without {' '.join(lacking)}: this run's state writes grow with the square of "
        "the fleet and few SIMs can share a bulk request; set them as docs/own-account.md's commands do (`eval "
        '"$(make -s env)"` sets them), see lattigo_fleet/engine_settings.py for the trade-off'
    )


def main() -> None:
    """`python -m lattigo_fleet.engine_settings`: the settings as shell `export` lines (for `make env`)."""
    for name, value in ENGINE_ENV.items():
        print(f"export {name}={value}")


if __name__ == "__main__":
    main()
