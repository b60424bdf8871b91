"""Fuzz run (not a test): damaged fleet files through the real `pulumi preview`, against the emulator.

The same generators as bench/fuzz_loader.py (devtools/fleetgen.py): N cases (default 50), 1 in 5 a valid
fleet, the others damaged. Each is written as fleet.yaml of one stack that holds no resource (so that no
refresh reads the account) and previewed with `pulumi preview --non-interactive`. It counts:

- tracebacks: "Traceback" in the output (the program must fail with its own one-line errors);
- hangs: a preview still running after --timeout seconds (killed);
- API calls on invalid input: requests the emulator served during the preview of a damaged file that the
  loader refuses (the program must stop before it reads the account);
- writes: any mutating request (a preview never writes).

    .venv/bin/python -m bench.fuzz_preview [--cases 50] [--timeout 120] [--seed 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from bench.account import API_KEY, KEY_NAME
from devtools.fleetgen import fleets, mutations
from devtools.pulumi_stack import PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.fleetfile import FleetError, load_fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY) as emu,
    ):
        admin = AdminClient(emu.base_url)
        project = make_project(Path(tmp) / "project")
        stack = PulumiStack(project, Path(tmp), "fuzz", bin_dir=pulumi_bin_dir())
        stack.set_config("lattigo:endpoint", emu.base_url)
        stack.set_config("lattigo:keyName", KEY_NAME)
        stack.set_config("lattigo:apiKey", API_KEY, secret=True)
        started = time.perf_counter()

        @seed(args.seed)
        @settings(
            max_examples=args.cases,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data(), fleet=fleets(max_sims=5))
        def case(data: st.DataObject, fleet: Any) -> None:
            number = counts["valid"] + counts["damaged"]
            damaged = data.draw(mutations(fleet.text))
            valid = number % 5 == 0
            raw = fleet.text.encode("utf-8") if valid else damaged
            (project / "fleet.yaml").write_bytes(raw)
            counts["valid" if valid else "damaged"] += 1
            try:
                load_fleet(project / "fleet.yaml")
                refused = False
            except FleetError:
                refused = True
            except Exception:  # the loader's own traceback: counted by bench.fuzz_loader; still preview it
                refused = True
            admin.clear_requests()
            try:
                proc = stack.run("preview", timeout=args.timeout)
                output = proc.stdout + proc.stderr
            except subprocess.TimeoutExpired:
                counts["hangs"] += 1
                examples.setdefault("hangs", raw[:200].decode("utf-8", "replace"))
                return
            served = admin.api_requests()
            if "Traceback" in output:
                counts["tracebacks"] += 1
                examples.setdefault("tracebacks", output[output.index("Traceback") :][:800])
            if refused and served:
                counts["API calls on invalid input"] += len(served)
                examples.setdefault("API calls on invalid input", raw[:200].decode("utf-8", "replace"))
            counts["writes"] += sum(r["method"] != "GET" for r in served)
            counts["preview failed" if proc.returncode else "preview passed"] += 1
            if refused and proc.returncode == 0:
                counts["invalid file previewed without error"] += 1
                examples.setdefault("invalid file previewed without error", raw[:200].decode("utf-8", "replace"))

        case()
        took = time.perf_counter() - started
    cases = counts["valid"] + counts["damaged"]
    print(f"cases: {cases} ({counts['valid']} valid, {counts['damaged']} damaged) in {took:.0f} s")
    for key in ("tracebacks", "hangs", "API calls on invalid input", "writes", "invalid file previewed without error"):
        print(f"{key}: {counts[key]}")
    print(f"previews that failed: {counts['preview failed']}; passed: {counts['preview passed']}")
    for key, text in examples.items():
        print(f"--- first of {key}:\n{text}")
    bad = counts["tracebacks"] + counts["hangs"] + counts["API calls on invalid input"] + counts["writes"]
    return 1 if bad or counts["invalid file previewed without error"] else 0


if __name__ == "__main__":
    sys.exit(main())
