"""The baseline beside the fleet table: a throwaway Pulumi program of N trivial dynamic resources.

A program as a user writes one from the Pulumi docs: a `ResourceProvider` whose `create` echoes its inputs,
plain `dynamic:Resource`s with two small string properties, and the SDK's defaults (so its pickled provider is
a secret in every resource, as `serialize_as_secret_always` leaves it; ours, providers/sim.py, turns that off).
bench/fleet.py runs it at the fleet's size with the same `pulumi` CLI, engine settings and provider host as
ours (the project uses the repo's virtualenv), and sets PYTHONPATH to ROOT so that the program and the provider
host can import this module.

The provider is defined here, in an importable module, and not in the program's `__main__`: dill then pickles
it by reference (a few bytes naming `bench.trivial.TrivialProvider`), as it does ours, and not by value. This
module imports only the SDK: the provider host imports it on every run, and what it imports is part of the
baseline's cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

ROOT = Path(__file__).resolve().parents[1]  # the directory that holds the `bench` package: PYTHONPATH


class TrivialProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=props)


class Trivial(Resource):
    def __init__(self, name: str, value: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TrivialProvider(), name, {"name": name, "value": value}, opts)


def program(n: int) -> str:
    """The project's __main__.py: n resources, registered in one plain loop."""
    return (
        f'"""{n:,} trivial dynamic resources (bench/trivial.py)."""\n'
        "\n"
        "from bench.trivial import Trivial\n"
        "\n"
        f"for i in range({n}):\n"
        '    Trivial(f"r-{i:05d}", value=f"value {i}")\n'
    )
