"""The fleet bench's baseline (bench/trivial.py): its program registers N plain dynamic resources, each with
its name and a value, and its provider pickles by reference. The program runs against the SDK's mocks, in a
copied context so that the SDK's settings (context variables) are left as they were."""

from __future__ import annotations

import base64
import contextvars
from collections.abc import Callable
from typing import Any

import dill
import pulumi
from pulumi.runtime import rpc

from bench import trivial

N = 25


class Recording(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered.append((args.typ, args.name, dict(args.inputs)))
        return args.inputs["name"], dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def run_program(n: int) -> Recording:
    mocks = Recording()
    code = compile(trivial.program(n), "__main__.py", "exec")

    def program() -> None:
        exec(code, {"__name__": "__main__"})

    # The SDK's test runner: runs the program, then waits for every registration it started (untyped in the SDK).
    awaiting: Callable[[Callable[[], None]], Callable[[], None]] = pulumi.runtime.test

    def run() -> None:
        pulumi.runtime.set_mocks(mocks, preview=False)
        awaiting(program)()

    contextvars.copy_context().run(run)
    return mocks


def test_the_program_registers_n_resources_with_a_name_and_a_value() -> None:
    mocks = run_program(N)

    assert sorted((typ, name, inputs["name"], inputs["value"]) for typ, name, inputs in mocks.registered) == [
        ("pulumi-python:dynamic:Resource", f"r-{i:05d}", f"r-{i:05d}", f"value {i}") for i in range(N)
    ]
    assert {frozenset(inputs) for _, _, inputs in mocks.registered} == {frozenset({"name", "value", "__provider"})}


def test_the_provider_pickles_by_reference_to_this_module_as_a_secret() -> None:
    [(_, _, inputs)] = run_program(1).registered
    secret = inputs["__provider"]  # the SDK's default (serialize_as_secret_always), as a user's program has it
    assert secret[rpc._special_sig_key] == rpc._special_secret_sig
    pickled = base64.b64decode(secret["value"])

    assert b"bench.trivial" in pickled and b"TrivialProvider" in pickled
    assert b"def create" not in pickled and len(pickled) < 200  # a reference, not the class's code
    assert type(dill.loads(pickled)) is trivial.TrivialProvider


def test_create_answers_the_name_as_id_and_the_inputs_as_outputs() -> None:
    result = trivial.TrivialProvider().create({"name": "r-00003", "value": "value 3"})

    assert (result.id, result.outs) == ("r-00003", {"name": "r-00003", "value": "value 3"})
