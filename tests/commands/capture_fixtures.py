"""Re-capture the preview-JSON fixtures of tests/commands from real runs: the pinned `pulumi` CLI, the real
program, the emulator. Not a test; run it when the program's output changes, then regenerate the golden files:

    PATH=$(scripts/ensure-pulumi.sh):$PWD/.venv/bin:$PATH .venv/bin/python -m tests.commands.capture_fixtures
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/commands/test_plan_golden.py

Each fixture is one `pulumi preview --json` document, normalised so that it does not depend on the machine or
the run: the emulator's port becomes 8080 and the SDK's stack traces (absolute paths) are dropped.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from devtools.pulumi_stack import PulumiResult, PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.plan_document import PLAN_OUT_ENV
from tests.e2e.fleets import PLAN_5MB, iccid, imei

FIXTURES = Path(__file__).parent / "fixtures"
ENDPOINT = "http://127.0.0.1:8080"


def fleet_of(rows: list[str], head: str = "") -> str:
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\n{head}sims:\n' + "".join(f"  - {r}\n" for r in rows)


def row(i: int, extra: str = "") -> str:
    return f'{{iccid: "{iccid(i)}", imei: "{imei(i)}", name: truck-{i}{", " + extra if extra else ""}}}'


def normalise(doc: Any, endpoint: str) -> Any:
    if isinstance(doc, dict):
        return {k: normalise(v, endpoint) for k, v in doc.items() if k not in ("stackTrace", "sourcePosition")}
    if isinstance(doc, list):
        return [normalise(v, endpoint) for v in doc]
    if isinstance(doc, str):
        return doc.replace(endpoint, ENDPOINT)
    return doc


def save(name: str, result: PulumiResult, endpoint: str, plan_out: Path) -> None:
    """The preview, and beside it the plan document its program wrote (`NAME.plan.json`), if it wrote one."""
    doc = normalise(json.loads(result.stdout), endpoint)
    doc["duration"] = 0
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    (FIXTURES / f"{name}.json").write_text(text)
    written = FIXTURES / f"{name}.plan.json"
    written.unlink(missing_ok=True)
    if plan_out.exists():
        plan = json.loads(plan_out.read_text())
        plan.pop("created_at", None)  # not part of its digest; the commit is None outside a checkout
        written.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n")
        plan_out.unlink()
    print(f"{name}: pulumi exited {result.returncode}, {len(text)} characters")


def main() -> None:
    FIXTURES.mkdir(exist_ok=True)
    srv = EmulatorServer(
        db=":memory:", seed="empty", key_name="k", api_key="s", activation_delay=0.0, host="127.0.0.1", port=0
    )
    srv.start()
    root = Path(tempfile.mkdtemp(prefix="lattigo-fixtures-"))
    try:
        admin = AdminClient(srv.base_url)
        stack = PulumiStack(make_project(root / "project"), root, "ci", bin_dir=pulumi_bin_dir())
        stack.set_config("lattigo:endpoint", srv.base_url)
        stack.set_config("lattigo:keyName", "k")
        stack.set_config("lattigo:apiKey", "s", secret=True)
        plan_out = root / "plan.json"
        stack.env[PLAN_OUT_ENV] = str(plan_out)

        def write(text: str) -> None:
            (stack.project_dir / "fleet.yaml").write_text(text)

        admin.add_sims(
            [
                {"iccid": iccid(i), "imei": imei(i), "state": "active", "rate_plan": PLAN_5MB, "cost_center": "ops"}
                for i in range(1, 9)
            ]
        )
        admin.add_sims([{"iccid": iccid(8), "state": "suspended"}])
        admin.add_sims([{"iccid": iccid(9), "imei": imei(9)}])  # in inventory: to activate
        base = {i: row(i, "cost_center: ops") for i in range(1, 8)}
        base[8] = row(8, "cost_center: ops, state: suspended")
        base[9] = row(9)

        # 1. A new stack: eight SIMs adopted, one activated.
        write(fleet_of(list(base.values())))
        save("create", stack.preview_json(), srv.base_url, plan_out)
        stack.up().check()

        # 2. One of each change; truck-6 removed under on_remove: retain.
        changed = dict(base)
        changed[1] = row(1, "cost_center: Fleet-East")
        changed[2] = row(2, 'cost_center: ops, notes: {note1: "east depot"}')
        changed[3] = row(3, "cost_center: ops, state: suspended")
        changed[4] = row(4, "cost_center: ops, usage_limit: {kb_limit: 51200, action: suspend}")
        changed[8] = row(8, "cost_center: ops, state: active")
        del changed[6]
        write(fleet_of(list(changed.values()), "policy: {on_remove: retain, max_changes: 5}\n"))
        save("changes", stack.preview_json(), srv.base_url, plan_out)
        stack.up().check()

        # 3. truck-7 removed under on_remove: suspend.
        suspend_policy = "policy: {on_remove: suspend, max_changes: 5}\n"
        write(fleet_of([r for i, r in changed.items() if i != 7], suspend_policy))
        save("remove_suspend", stack.preview_json(), srv.base_url, plan_out)

        # 4. Four SIMs removed under on_remove: suspend with max_changes 1: refused by the guard.
        write(
            fleet_of(
                [r for i, r in changed.items() if i in (1, 2, 3)], "policy: {on_remove: suspend, max_changes: 1}\n"
            )
        )
        save("refused", stack.preview_json(), srv.base_url, plan_out)

        # 5. Drift: three changes out of band, and one SIM nobody declared.
        write(fleet_of(list(changed.values()), "policy: {on_remove: retain, max_changes: 5}\n"))
        stack.preview("--expect-no-changes").check()
        admin.add_sims(
            [
                {"iccid": iccid(1), "cost_center": "Warehouse"},
                {"iccid": iccid(2), "note1": "west"},
                {"iccid": iccid(5), "state": "suspended"},
            ]
        )
        admin.add_sims([{"iccid": iccid(99), "imei": imei(99), "state": "active", "rate_plan": PLAN_5MB}])
        save("drift", stack.preview_json("--expect-no-changes"), srv.base_url, plan_out)

        # 6. The endpoint cannot be reached: the program's error.
        stack.set_config("lattigo:endpoint", "http://127.0.0.1:9")
        save("unreachable", stack.preview_json(), srv.base_url, plan_out)
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
