"""Fuzz run (not a test): ``load_fleet`` on N generated fleet files (default 10,000), the longer run of the
property-based suite (tests/fleetfile/test_loader_properties.py) with the same generators (devtools/fleetgen.py):
1 in 5 a valid fleet, the others that fleet damaged (random bytes, control characters, truncation, deep
nesting, YAML bombs, aliases, duplicate anchors, huge numbers, duplicate keys, punctuation).

    .venv/bin/python -m bench.fuzz_loader [--cases 10000] [--timeout 5] [--seed 0]

Each case runs under ``signal.alarm`` (--timeout seconds: a case that takes longer is a hang) and the whole
run under a 4 GiB address-space limit (a YAML bomb that got through would be a MemoryError, a traceback).
It prints:

- tracebacks: cases where load_fleet raised anything but FleetError;
- hangs: cases over the timeout;
- wrong positions: issues outside the file (line not in 1..lines+1, column not on the line), or messages
  with ruamel's "<unicode string>" or over one line;
- wrong SIMs: valid fleets that did not load to the SIMs they declare;
- API calls on invalid input: network connections and HTTP requests attempted during the loads (counted by
  wrapping socket.connect and requests' Session.request; the loader makes none by construction);
- the slowest case and the cases per second.
"""

from __future__ import annotations

import argparse
import resource
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from devtools.fleetgen import fleets, mutations, outcome_problems


class _Hang(Exception):
    pass


def _expire(signum: int, frame: Any) -> None:
    raise _Hang


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = 4 << 30
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    slowest = (0.0, "")
    network: list[str] = []
    real_connect, real_request = socket.socket.connect, requests.Session.request

    def no_connect(self: object, address: object) -> None:
        network.append(f"socket.connect {address!r}")
        raise OSError("fuzz_loader: no network during load_fleet")

    def no_request(self: requests.Session, method: str | bytes, url: str | bytes, *a: Any, **k: Any) -> Any:
        network.append(f"{method!s} {url!s}")
        raise OSError("fuzz_loader: no API calls during load_fleet")

    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "fleet.yaml"
    signal.signal(signal.SIGALRM, _expire)

    @seed(args.seed)
    @settings(
        max_examples=args.cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # count every case; do not shrink (there is nothing to fail)
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data(), fleet=fleets(max_sims=5))
    def case(data: st.DataObject, fleet: Any) -> None:
        nonlocal slowest
        number = counts["valid"] + counts["damaged"]
        if number and number % 1000 == 0:
            print(f"... {number:,} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
        damaged = data.draw(mutations(fleet.text))  # drawn every time: hypothesis needs the same draws per case
        valid = number % 5 == 0  # 1 in 5 as generated, the others damaged
        raw = fleet.text.encode("utf-8") if valid else damaged
        path.write_bytes(raw)
        counts["valid" if valid else "damaged"] += 1
        before = len(network)
        started = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            spec, problems = outcome_problems(path, raw)
        except _Hang:
            counts["hangs"] += 1
            examples.setdefault("hangs", raw[:300].decode("utf-8", "replace"))
            return
        except BaseException as e:
            signal.setitimer(signal.ITIMER_REAL, 0)
            counts["tracebacks"] += 1
            examples.setdefault("tracebacks", "".join(traceback.format_exception_only(e)).strip())
            return
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.perf_counter() - started
        if elapsed > slowest[0]:
            slowest = (elapsed, f"{len(raw):,} bytes, {'valid' if valid else 'damaged'}")
        if problems:
            counts["wrong positions"] += 1
            examples.setdefault("wrong positions", problems[0])
        if spec is None:
            counts["refused"] += 1
            if len(network) > before:
                counts["API calls on invalid input"] += len(network) - before
        elif valid and spec.sims != fleet.sims:
            counts["wrong SIMs"] += 1
            examples.setdefault("wrong SIMs", fleet.text[:300])

    # Patching methods of the classes themselves, for the run only (put back in the finally): mypy refuses any.
    socket.socket.connect, requests.Session.request = no_connect, no_request  # type: ignore[method-assign]
    started = time.perf_counter()
    try:
        case()
    finally:
        socket.socket.connect, requests.Session.request = real_connect, real_request  # type: ignore[method-assign]
        tmp.cleanup()
    total = time.perf_counter() - started
    cases = counts["valid"] + counts["damaged"]
    print(
        f"cases: {cases:,} ({counts['valid']:,} valid, {counts['damaged']:,} damaged, "
        f"{counts['refused']:,} refused with a FleetError) in {total:.0f} s ({cases / total:.0f} per second)"
    )
    for name in ("tracebacks", "hangs", "wrong positions", "wrong SIMs", "API calls on invalid input"):
        print(f"{name}: {counts[name]}" + (f"    e.g. {examples[name]}" if name in examples else ""))
    print(f"slowest case: {slowest[0] * 1000:.0f} ms ({slowest[1]}); network attempts in all: {len(network)}")
    bad = sum(counts[n] for n in ("tracebacks", "hangs", "wrong positions", "wrong SIMs", "API calls on invalid input"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
