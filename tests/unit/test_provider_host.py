"""The provider host on top of the pinned SDK's servicer: a ProviderError reaches the engine as its message
alone, whichever RPC raised it (the SDK wraps some of them in a traceback handler of its own since 3.260), an
unexpected error with its traceback; and the program's stack-trace lever degrades to the SDK's own path when
the private function it replaces is gone."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import dill
import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider

from lattigo_fleet import provider_host
from lattigo_fleet.provider_host import ProviderError

URN = "urn:pulumi:dev::lattigo-fleet::pulumi-python:dynamic:Resource::one"


class Refusing(ResourceProvider):
    """Refuses every call the way our providers do (ProviderError), except `update`, which fails unexpectedly."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        raise ProviderError("check: refused in plain words")

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        raise ProviderError("diff: refused in plain words")

    def create(self, props: dict[str, Any]) -> Any:
        raise ProviderError("create: refused in plain words")

    def read(self, id_: str, props: dict[str, Any]) -> Any:
        raise ProviderError("read: refused in plain words")

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        raise ProviderError("delete: refused in plain words")

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        raise KeyError("no-such-field")


class Aborted(Exception):
    """What grpc's ServicerContext.abort raises (it raises a bare Exception)."""


class Context:
    def __init__(self) -> None:
        self.aborts: list[tuple[grpc.StatusCode, str]] = []

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborts.append((code, details))
        raise Aborted()


@pytest.fixture
def servicer() -> Iterator[Any]:
    """The host's servicer; get_provider configures the SDK's global settings, which are put back after."""
    from pulumi.runtime import settings

    saved = settings.SETTINGS
    try:
        yield provider_host._servicer_class()()
    finally:
        settings.SETTINGS = saved


def props(**extra: Any) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update({"__provider": base64.b64encode(dill.dumps(Refusing())).decode(), "label": "a", **extra})
    return struct


def call(servicer: Any, method: str) -> Context:
    from pulumi.runtime.proto import provider_pb2

    requests: dict[str, Callable[[], Any]] = {
        "Check": lambda: provider_pb2.CheckRequest(urn=URN, olds=props(), news=props()),
        "Diff": lambda: provider_pb2.DiffRequest(urn=URN, id="x", olds=props(), news=props()),
        "Create": lambda: provider_pb2.CreateRequest(urn=URN, properties=props()),
        "Read": lambda: provider_pb2.ReadRequest(urn=URN, id="x", properties=props()),
        "Delete": lambda: provider_pb2.DeleteRequest(urn=URN, id="x", properties=props()),
        "Update": lambda: provider_pb2.UpdateRequest(urn=URN, id="x", olds=props(), news=props()),
    }
    context = Context()
    with pytest.raises(Aborted):
        getattr(servicer, method)(requests[method](), context)
    return context


@pytest.mark.parametrize("method", ["Check", "Diff", "Create", "Read", "Delete"])
def test_a_provider_error_is_its_message_alone(servicer: Any, method: str) -> None:
    context = call(servicer, method)
    assert context.aborts == [(grpc.StatusCode.UNKNOWN, f"{method.lower()}: refused in plain words")]


def test_an_unexpected_error_keeps_its_traceback(servicer: Any) -> None:
    [(code, details)] = call(servicer, "Update").aborts
    assert code == grpc.StatusCode.UNKNOWN
    assert details.startswith("Traceback (most recent call last):")
    assert "KeyError: 'no-such-field'" in details and "in update" in details


def test_the_urn_of_the_request_is_known_while_it_is_served_and_cleared_after(
    servicer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def remember(self: Refusing, props: dict[str, Any]) -> Any:
        seen.append(provider_host._local.urn)
        raise ProviderError("seen")

    monkeypatch.setattr(Refusing, "create", remember)
    call(servicer, "Create")
    assert seen == [URN] and provider_host._local.urn == ""


def test_registration_without_stack_traces_replaces_the_sdk_collector_and_puts_it_back() -> None:
    from pulumi.runtime import resource as sdk_resource

    from providers.program import _without_stack_traces

    original = sdk_resource._get_stack_trace
    with _without_stack_traces():
        assert sdk_resource._get_stack_trace is not original
        assert list(sdk_resource._get_stack_trace().frames) == []
    assert sdk_resource._get_stack_trace is original


def test_a_later_sdk_without_the_stack_trace_collector_registers_the_slower_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the SDK renames `_get_stack_trace`, registration goes on with the SDK's own (larger) stack traces:
    nothing fails and nothing is patched in under the old name."""
    from pulumi.runtime import resource as sdk_resource

    from providers.program import _without_stack_traces

    monkeypatch.delattr(sdk_resource, "_get_stack_trace")
    with _without_stack_traces():
        assert not hasattr(sdk_resource, "_get_stack_trace")
    assert not hasattr(sdk_resource, "_get_stack_trace")
