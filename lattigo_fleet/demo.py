"""`lattigo-fleet demo`: the whole product in one run, against the emulator.

Starts the emulator with the `demo` seed on a free port, points a throwaway local stack (file backend in a
temporary directory) at it, runs `pulumi preview --diff` and `pulumi up` on the shipped fleet.yaml, shows the
calls the apply made (from the emulator's request log), shows that a second preview has no changes, and stops
the emulator.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from lattigo_fleet.engine_settings import ENGINE_ENV

DEMO_KEY_NAME = "demo-key"
DEMO_API_KEY = "demo-secret"  # the emulator's demo credentials; never a real key
DEMO_PASSPHRASE = "lattigo-fleet-demo"  # documented default passphrase for demo and test stacks


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _admin(base_url: str, path: str, method: str = "GET") -> Any:
    req = urllib.request.Request(base_url + path, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def run_demo(project_dir: Path, fleet_file: str = "fleet.yaml", keep: bool = False) -> int:
    from emulator.server import EmulatorServer

    if shutil.which("pulumi") is None:
        print("lattigo-fleet demo: the pulumi CLI is not on PATH; run `make demo`, which provides it", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="lattigo-fleet-demo-"))
    # A stack name of its own, so that the stack config file Pulumi writes into the project never collides
    # with a user's stack; it is removed at the end.
    stack = f"demo-{secrets.token_hex(4)}"
    stack_config = project_dir / f"Pulumi.{stack}.yaml"
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": (work / "backend").as_uri(),
        "PULUMI_HOME": str(work / "pulumi-home"),
        "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", DEMO_PASSPHRASE),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        **ENGINE_ENV,
    }
    (work / "backend").mkdir()

    def pulumi(*args: str, check: bool = True) -> int:
        print(f"$ pulumi {' '.join(args)}", flush=True)
        code = subprocess.run(
            ["pulumi", *args, "--stack", stack, "--non-interactive"], cwd=project_dir, env=env
        ).returncode
        if check and code != 0:
            raise SystemExit(f"lattigo-fleet demo: `pulumi {' '.join(args)}` failed (exit {code})")
        return code

    server = EmulatorServer(
        db=str(work / "emulator.db"), seed="demo", key_name=DEMO_KEY_NAME, api_key=DEMO_API_KEY, activation_delay=1.0
    )
    server.start()
    try:
        _banner(f"emulator (demo seed) listening on {server.base_url}")
        subprocess.run(
            ["pulumi", "stack", "init", stack, "--non-interactive"],
            cwd=project_dir,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for key, value, secret in (
            ("lattigo:endpoint", server.base_url, False),
            ("lattigo:keyName", DEMO_KEY_NAME, False),
            ("lattigo:apiKey", DEMO_API_KEY, True),
            ("lattigo-fleet:fleetFile", fleet_file, False),
            ("lattigo-fleet:auditLog", str(work / "audit.jsonl"), False),
        ):
            subprocess.run(
                ["pulumi", "config", "set", key, value, *(["--secret"] if secret else []), "--stack", stack],
                cwd=project_dir,
                env=env,
                check=True,
            )

        _banner("what would change: pulumi preview --diff")
        pulumi("preview", "--diff")

        _admin(server.base_url, "/_emulator/requests", "DELETE")
        _banner("apply: pulumi up")
        pulumi("up", "--yes", "--skip-preview")
        served = _admin(server.base_url, "/_emulator/requests")
        mutating = [r for r in served if r["method"] != "GET" and not r["path"].startswith("/_emulator")]
        _banner(f"the apply sent {len(mutating)} mutating requests ({len(served)} in all)")
        for (method, path), n in sorted(Counter((r["method"], r["path"]) for r in mutating).items()):
            print(f"  {n:3d} x {method} {path}")

        _banner("drift check: pulumi preview --refresh --expect-no-changes")
        pulumi("preview", "--refresh", "--expect-no-changes", "--diff")
        _banner("done: the account matches fleet.yaml")
        return 0
    finally:
        server.stop()
        stack_config.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"(kept {work})")
