"""The foundation: the pinned pulumi CLI and engine run a dynamic provider for real."""

from __future__ import annotations

import re

from devtools.pulumi_stack import REPO, StackFactory

TRIVIAL_PROGRAM = """
import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

class Counter(ResourceProvider):
    def create(self, props):
        return CreateResult(id_="counter-" + props["label"], outs={**props, "doubled": props["value"] * 2})

class CounterResource(Resource):
    doubled: pulumi.Output[int]
    def __init__(self, name, label, value):
        super().__init__(Counter(), name, {"label": label, "value": value, "doubled": None})

r = CounterResource("one", pulumi.Config().require("label"), 21)
pulumi.export("doubled", r.doubled)
"""


def test_cli_reports_the_pinned_version(stack_factory: StackFactory) -> None:
    stack = stack_factory(TRIVIAL_PROGRAM)
    pin = re.search(r"^pulumi==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert pin is not None, "constraints.txt pins pulumi"
    pinned = pin.group(1)
    assert stack.run("version").check().stdout.strip() == f"v{pinned}"


def test_dynamic_resource_up_preview_destroy(stack_factory: StackFactory) -> None:
    stack = stack_factory(TRIVIAL_PROGRAM)
    stack.set_config("label", "a")

    stack.up().check()
    assert stack.outputs() == {"doubled": 42}
    [res] = stack.resources("dynamic:Resource")
    assert res["id"] == "counter-a"

    preview = stack.preview_json("--expect-no-changes").check().json
    assert {s["op"] for s in preview["steps"]} == {"same"}

    # A changed input is a change: --expect-no-changes must fail on it.
    stack.set_config("label", "b")
    assert stack.preview("--expect-no-changes").returncode != 0

    stack.destroy().check()
    assert stack.resources("dynamic:Resource") == []
