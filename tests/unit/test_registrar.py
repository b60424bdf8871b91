"""providers.registrar sends, for each Sim, exactly the RegisterResourceRequest that the SDK's `Sim(...)` sends.

The SDK's side is the SDK itself: under Pulumi's own mocks, `Sim(name, inputs, ResourceOptions(deleted_with=
guard))` with the stack-trace lever on, its request captured at the mock monitor. It runs in a child process,
because the mocks configure the SDK's process-wide settings. If a later SDK sends something else for a Sim
(a new field, another type token, a different provider pickle), the comparison fails here, not in a user's
stack."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from devtools.pulumi_stack import REPO
from lattigo_fleet.fleetfile import DesiredSim, UsageLimit
from providers import registrar

SIMS = [
    DesiredSim(iccid="89010000000000000001", name="pump-1", state="active", cost_center="ops"),
    DesiredSim(
        iccid="89010000000000000002",
        name="pump-2",
        state="suspended",
        cost_center="field",
        notes={"note1": "north yard", "note3": ""},
        rate_plan="ACME Co 5mb Rate Plan",
        imei="356938035643809",
        usage_limit=UsageLimit(kb_limit=20480, action="suspend", usernames=("ops",)),
        ignore_changes=("notes",),
    ),
    DesiredSim(iccid="89010000000000000003", name="89010000000000000003", usage_limit=None),
]

CAPTURE = r"""
import json
import sys
import pulumi
from google.protobuf.json_format import MessageToDict
from pulumi.runtime import mocks

from lattigo_fleet.fleetfile import DesiredSim
from providers import registrar
from providers.program import _without_stack_traces
from providers.sim import Sim

captured = []

class Monitor(mocks.MockMonitor):
    def RegisterResource(self, request):
        captured.append(request)
        return super().RegisterResource(request)

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        return [args.name, args.inputs]

    def call(self, args):
        return {}

pulumi.runtime.set_mocks(Mocks(), preview=True, monitor=Monitor(Mocks()))

class Guard(pulumi.CustomResource):
    def __init__(self):
        super().__init__("lattigo-fleet:index:FleetGuard", "fleet-guard", {})

guard = Guard()
inputs = json.loads(sys.stdin.read())
sims = []
with _without_stack_traces():
    for name, props in inputs:
        sims.append(Sim(name, props, pulumi.ResourceOptions(deleted_with=guard)))

async def lean():
    lean = await registrar.Registrar.for_run(guard)
    return [await lean.register(name, props) for name, props in inputs]

@pulumi.runtime.test
def run():
    return pulumi.Output.all(*[s.urn for s in sims]).apply(lambda _: pulumi.Output.from_input(lean()))

run()
sims_requests = [r for r in captured if r.type.startswith("pulumi-python:")]
n = len(inputs)
print(json.dumps({
    "sdk": [MessageToDict(r) for r in sims_requests[:n]],
    "lean": [MessageToDict(r) for r in sims_requests[n:]],
}))
"""


@pytest.fixture(scope="module")
def requests() -> dict[str, list[dict[str, Any]]]:
    inputs = [[sim.iccid, dict(sim.to_inputs())] for sim in SIMS]
    proc = subprocess.run(
        [sys.executable, "-c", CAPTURE],
        input=json.dumps(inputs),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc: dict[str, list[dict[str, Any]]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def test_the_sdk_and_the_registrar_each_registered_every_sim(requests: dict[str, list[dict[str, Any]]]) -> None:
    assert [r["name"] for r in requests["sdk"]] == [s.iccid for s in SIMS]
    assert [r["name"] for r in requests["lean"]] == [s.iccid for s in SIMS]


@pytest.mark.parametrize("index", range(len(SIMS)))
def test_a_sim_registers_with_the_request_the_sdk_sends(requests: dict[str, list[dict[str, Any]]], index: int) -> None:
    assert requests["lean"][index] == requests["sdk"][index]


def test_inputs_serialize_as_the_sdk_serializes_plain_data() -> None:
    struct = registrar.properties({"a": None, "b": {"c": None, "d": 1}, "e": [1, None, "x"], "f": True}, "P")
    assert "a" not in struct.fields  # a top-level None is an input left out
    assert struct.fields["b"].struct_value.fields["c"].WhichOneof("kind") == "null_value"
    assert struct.fields["f"].WhichOneof("kind") == "bool_value"
    assert struct.fields["__provider"].string_value == "P"


def test_without_the_sdk_pieces_the_program_registers_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi.dynamic.dynamic as sdk_dynamic

    assert registrar.available()
    monkeypatch.delattr(sdk_dynamic, "serialize_provider")
    assert not registrar.available()
