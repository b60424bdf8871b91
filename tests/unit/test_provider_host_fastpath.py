"""The provider host's fast paths answer Check, Create, Read, Update (and Diff) exactly as the pinned SDK's servicer
does: the same messages, to the byte, for every shape of plain data, and the SDK's own serialization for anything
else; without an event loop for plain data, and without the SDK's get_provider (which configures its settings)
once a provider is known; and through the SDK's own methods when a later SDK lacks what they rely on."""

from __future__ import annotations

import asyncio
import base64
import enum
import types
from collections.abc import Callable, Iterator
from typing import Any

import dill
import grpc
import pulumi
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, ResourceProvider, UpdateResult
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from lattigo_fleet import provider_host
from lattigo_fleet.provider_host import DetailedDiffResult

URN = "urn:pulumi:dev::lattigo-fleet::pulumi-python:dynamic:Resource::one"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"


class Color(enum.StrEnum):
    RED = "red"


class Echo(ResourceProvider):
    """Answers every call with the properties it was given plus `extra` (set by each test), the way our providers
    answer with what they were asked for and what they observed."""

    extra: dict[str, Any] = {}
    read_inputs: bool = True

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self.tag = tag

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult({**news, **self.extra}, [CheckFailure("iccid", "too short")])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DetailedDiffResult:
        return DetailedDiffResult({"cost_center": "update"})

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="8901", outs={**props, **self.extra})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = {**props, **self.extra} if self.read_inputs else None
        return ReadResult(id_=id_, outs={**props, **self.extra}, inputs=inputs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, **self.extra})


class Empty(Echo):
    """Answers Create and Update with no outputs at all (outs=None)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="8901")

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult()


class Aborted(Exception):
    """What grpc's ServicerContext.abort raises (it raises a bare Exception)."""


class Context:
    def __init__(self) -> None:
        self.aborts: list[tuple[grpc.StatusCode, str]] = []

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborts.append((code, details))
        raise Aborted()


@pytest.fixture(autouse=True)
def sdk_settings() -> Iterator[None]:
    """get_provider configures the SDK's global settings; they are put back after."""
    from pulumi.runtime import settings

    saved = settings.SETTINGS
    try:
        yield
    finally:
        settings.SETTINGS = saved


def ours() -> Any:
    return provider_host._servicer_class()()


def stock() -> Any:
    """The pinned SDK's own servicer, as `python -m pulumi.dynamic` serves it."""
    return provider_host._sdk_servicer_module().DynamicResourceProviderServicer()


def serialized_provider(provider: ResourceProvider) -> str:
    return base64.b64encode(dill.dumps(provider)).decode()


def struct(provider: ResourceProvider | str | None = None, **values: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    chosen = provider if isinstance(provider, str) else serialized_provider(provider or Echo())
    message.update({"__provider": chosen, "iccid": "8901260882290", "cost_center": "ops", **values})
    return message


REQUESTS: dict[str, Callable[[], Any]] = {
    "Check": lambda: provider_pb2.CheckRequest(urn=URN, olds=struct(), news=struct(cost_center="lab")),
    "Create": lambda: provider_pb2.CreateRequest(urn=URN, properties=struct()),
    "Read": lambda: provider_pb2.ReadRequest(urn=URN, id="8901", properties=struct()),
    "Update": lambda: provider_pb2.UpdateRequest(urn=URN, id="8901", olds=struct(), news=struct(cost_center="lab")),
}

PLAIN_SHAPES: dict[str, dict[str, Any]] = {
    "nested notes": {"notes": {"site": "north", "rack": {"row": 4, "slots": ["a", "b"]}}},
    "ints": {"limit_mb": 1024, "zero": 0, "negative": -3, "largest exact": 2**53, "beyond": 2**60},
    "floats": {"ratio": 0.25, "whole": 2.0, "tiny": 1e-300, "negative": -1.5},
    "bools": {"on": True, "off": False, "in a list": [True, 0, False, 1]},
    "None at the top is dropped": {"gone": None, "also gone": None},
    "None inside is kept": {"notes": {"empty": None}, "slots": [None, 1, None]},
    "empty containers": {"notes": {}, "tags": [], "nested": {"inner": {}, "list": [[]]}},
    "strings": {"empty": "", "unicode": "Zürich ✓", "unknown sentinel": rpc.UNKNOWN},
    "a secret the engine sent": {"pin": {SECRET_SIG: SECRET_VALUE_SIG, "value": "1234"}},
    "the provider replaces a property": {"cost_center": "finance", "__provider": "kept as the SDK keeps it"},
}

FALLBACK_SHAPES: dict[str, dict[str, Any]] = {
    "a tuple": {"tags": ("a", "b")},
    "a str enum": {"color": Color.RED},
    "an enum inside a dict": {"notes": {"color": Color.RED}},
    "an asset": {"script": pulumi.StringAsset("echo hi")},
    "an unknown": {"later": pulumi.output.UNKNOWN},
    "a dict subclass": {"notes": type("Notes", (dict,), {})(site="north")},
}


def answers(servicer: Any, method: str, request: Any) -> Any:
    return getattr(servicer, method)(request, Context())


def assert_same(mine: Any, theirs: Any) -> None:
    assert mine == theirs
    assert mine.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    assert mine.SerializeToString() == theirs.SerializeToString()


@pytest.fixture
def event_loops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the event loops made from here on (the SDK's way of serializing makes one per call)."""
    made: list[int] = []
    real = asyncio.new_event_loop

    def counting() -> asyncio.AbstractEventLoop:
        made.append(1)
        return real()

    monkeypatch.setattr(asyncio, "new_event_loop", counting)
    return made


@pytest.mark.parametrize("method", sorted(REQUESTS))
@pytest.mark.parametrize("shape", sorted(PLAIN_SHAPES))
def test_plain_data_is_answered_as_the_sdk_answers_it_without_an_event_loop(
    method: str, shape: str, monkeypatch: pytest.MonkeyPatch, event_loops: list[int]
) -> None:
    monkeypatch.setattr(Echo, "extra", PLAIN_SHAPES[shape])
    theirs = answers(stock(), method, REQUESTS[method]())
    del event_loops[:]
    assert_same(answers(ours(), method, REQUESTS[method]()), theirs)
    assert event_loops == []


@pytest.mark.parametrize("method", sorted(REQUESTS))
@pytest.mark.parametrize("shape", sorted(FALLBACK_SHAPES))
def test_anything_else_is_serialized_the_sdk_way_with_the_same_answer(
    method: str, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Echo, "extra", FALLBACK_SHAPES[shape])
    theirs = answers(stock(), method, REQUESTS[method]())
    assert_same(answers(ours(), method, REQUESTS[method]()), theirs)


def test_the_fallback_makes_the_sdks_event_loop_and_calls_the_provider_once(
    monkeypatch: pytest.MonkeyPatch, event_loops: list[int]
) -> None:
    """Only the serialization falls back, not the whole method: a Create is never made twice."""
    created: list[dict[str, Any]] = []

    def create(self: Echo, props: dict[str, Any]) -> CreateResult:
        created.append(props)
        return CreateResult(id_="8901", outs={**props, "tags": ("a", "b")})

    monkeypatch.setattr(Echo, "create", create)
    response = answers(ours(), "Create", REQUESTS["Create"]())
    assert len(created) == 1 and len(event_loops) == 1
    assert list(response.properties["tags"]) == ["a", "b"]


def test_read_sends_the_providers_inputs_with_the_provider_added(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Echo, "extra", {"state": "active"})
    response = answers(ours(), "Read", REQUESTS["Read"]())
    assert response.HasField("inputs")
    assert dict(response.inputs) == dict(response.properties)
    assert response.inputs["state"] == "active"
    assert response.inputs["__provider"] == serialized_provider(Echo())


def test_read_without_inputs_from_the_provider_sends_none_as_the_sdk_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Echo, "read_inputs", False)
    theirs = answers(stock(), "Read", REQUESTS["Read"]())
    mine = answers(ours(), "Read", REQUESTS["Read"]())
    assert_same(mine, theirs)
    assert not mine.HasField("inputs")


@pytest.mark.parametrize("method", ["Create", "Update"])
def test_no_outputs_from_the_provider_send_the_provider_alone_as_the_sdk_does(method: str) -> None:
    provider = serialized_provider(Empty())
    request = {
        "Create": provider_pb2.CreateRequest(urn=URN, properties=struct(provider)),
        "Update": provider_pb2.UpdateRequest(urn=URN, id="8901", olds=struct(provider), news=struct(provider)),
    }[method]
    mine = answers(ours(), method, request)
    assert_same(mine, answers(stock(), method, request))
    assert dict(mine.properties) == {"__provider": provider}


def test_a_read_of_a_device_that_is_gone_answers_as_the_sdk_does(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(self: Echo, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=None, outs={})

    monkeypatch.setattr(Echo, "read", gone)
    mine = answers(ours(), "Read", REQUESTS["Read"]())
    assert_same(mine, answers(stock(), "Read", REQUESTS["Read"]()))
    assert mine.id == ""


def counted_sdk(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Make the host load an SDK module whose get_provider and configure count their calls."""
    calls = {"get_provider": 0, "configure": 0}
    load = provider_host._sdk_servicer_module

    def loaded() -> Any:
        sdk = load()
        get_provider, configure = sdk.get_provider, sdk.configure

        def counting_get_provider(props: dict[str, Any], config: dict[str, Any]) -> Any:
            calls["get_provider"] += 1
            return get_provider(props, config)

        def counting_configure(settings: Any) -> None:
            calls["configure"] += 1
            configure(settings)

        sdk.get_provider, sdk.configure = counting_get_provider, counting_configure
        return sdk

    monkeypatch.setattr(provider_host, "_sdk_servicer_module", loaded)
    return calls


def test_a_known_provider_is_found_without_the_sdks_get_provider_or_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = counted_sdk(monkeypatch)
    servicer = ours()
    for method in ("Check", "Check", "Read", "Create", "Update", "Check"):
        answers(servicer, method, REQUESTS[method]())
    answers(servicer, "Diff", provider_pb2.DiffRequest(urn=URN, id="8901", olds=struct(), news=struct()))
    assert calls == {"get_provider": 1, "configure": 1}


def test_each_serialized_provider_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counted_sdk(monkeypatch)
    servicer = ours()
    for tag in ("sim", "guard", "sim", "guard"):
        request = provider_pb2.CheckRequest(urn=URN, olds=struct(Echo(tag)), news=struct(Echo(tag)))
        response = answers(servicer, "Check", request)
        assert response.inputs["__provider"] == serialized_provider(Echo(tag))
    assert calls["get_provider"] == 2


def test_the_settings_a_cached_call_sees_are_the_ones_the_sdk_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """grpc serves each call in a fresh contextvars.Context: there, without a configure of its own, a cached call
    reads the project and stack the SDK's configure set on the first call."""
    import contextvars

    from pulumi.runtime import settings

    seen: list[tuple[str | None, str | None]] = []

    def check(self: Echo, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        seen.append((settings.get_project(), settings.get_stack()))
        return CheckResult(news, [])

    monkeypatch.setenv("PULUMI_PROJECT", "fleet-under-test")
    monkeypatch.setattr(Echo, "check", check)
    servicer = ours()
    for _ in range(3):
        contextvars.Context().run(answers, servicer, "Check", REQUESTS["Check"]())
    assert seen == [("fleet-under-test", "stack")] * 3


def test_an_unknown_new_provider_is_handled_exactly_as_the_sdk_handles_it() -> None:
    """The SDK meant to take the old provider when the new one is unknown, but its deserializer has already made
    the sentinel an Unknown, which never equals it: the call fails. The host fails the same way."""
    request = provider_pb2.CheckRequest(urn=URN, olds=struct(), news=struct(rpc.UNKNOWN))
    failures = []
    for servicer in (ours(), stock()):
        context = Context()
        with pytest.raises(Aborted):
            servicer.Check(request, context)
        [(code, details)] = context.aborts
        failures.append((code, details.strip().splitlines()[-1]))
    assert failures[0] == failures[1]
    assert failures[0][0] == grpc.StatusCode.UNKNOWN


def test_a_value_the_sdk_cannot_serialize_fails_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Echo, "extra", {"handle": object()})
    context = Context()
    with pytest.raises(Aborted):
        ours().Check(REQUESTS["Check"](), context)
    [(code, details)] = context.aborts
    assert code == grpc.StatusCode.UNKNOWN
    assert details.startswith("Traceback (most recent call last):")
    assert "unexpected input of type object for handle" in details


@pytest.mark.parametrize(
    "extra", [{"huge": 10**400}, {"notes": {1: "one"}}], ids=["an int beyond a double", "a dict with a non-str key"]
)
def test_what_the_wire_cannot_carry_fails_as_the_sdk_fails(
    extra: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Echo, "extra", extra)
    endings = []
    for servicer in (ours(), stock()):
        context = Context()
        with pytest.raises(Aborted):
            servicer.Check(REQUESTS["Check"](), context)
        [(code, details)] = context.aborts
        assert code == grpc.StatusCode.UNKNOWN and details.startswith("Traceback (most recent call last):")
        endings.append(details.strip().splitlines()[-1])
    assert endings[0] == endings[1]


def test_a_detailed_diff_still_names_its_properties() -> None:
    response = answers(ours(), "Diff", provider_pb2.DiffRequest(urn=URN, id="8901", olds=struct(), news=struct()))
    assert response.hasDetailedDiff and list(response.diffs) == ["cost_center"]


# What a later SDK might lack: each name, taken from the module that has it.
MISSING = [("sdk", "PROVIDER_KEY"), ("sdk", "get_provider")] + [
    ("rpc", name) for name in ("deserialize_properties", "serialize_properties", "UNKNOWN")
]


def without(module: Any, name: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{key: value for key, value in vars(module).items() if key != name})


@pytest.mark.parametrize(("where", "name"), MISSING)
def test_a_later_sdk_without_an_internal_gets_no_fast_paths(where: str, name: str) -> None:
    sdk: Any = provider_host._sdk_servicer_module()
    later_rpc: Any = rpc
    assert provider_host._sdk_internals(sdk, later_rpc) is not None  # the pinned SDK has them all
    if where == "sdk":
        sdk = without(sdk, name)
    else:
        later_rpc = without(rpc, name)
    assert provider_host._sdk_internals(sdk, later_rpc) is None


def test_a_later_sdk_whose_results_carry_a_new_field_gets_no_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast paths would drop a field they do not know; the SDK's own methods send it."""
    from pulumi import dynamic

    class LaterReadResult(ReadResult):
        def __init__(self, id_: str | None = None, outs: Any = None, inputs: Any = None, refresh: Any = None) -> None:
            super().__init__(id_, outs, inputs)

    monkeypatch.setattr(dynamic, "ReadResult", LaterReadResult)
    assert provider_host._sdk_internals(provider_host._sdk_servicer_module(), rpc) is None


def test_a_later_sdk_without_get_provider_is_served_by_its_own_methods(
    monkeypatch: pytest.MonkeyPatch, event_loops: list[int]
) -> None:
    """Same answers, the slower way (an event loop per call), and the engine's own diffs instead of detailed ones."""
    monkeypatch.setattr(Echo, "extra", PLAIN_SHAPES["nested notes"])
    theirs = {method: answers(stock(), method, REQUESTS[method]()) for method in REQUESTS}
    load = provider_host._sdk_servicer_module
    monkeypatch.setattr(provider_host, "_sdk_servicer_module", lambda: without(load(), "get_provider"))
    servicer = ours()
    del event_loops[:]
    for method in sorted(REQUESTS):
        assert_same(answers(servicer, method, REQUESTS[method]()), theirs[method])
    assert len(event_loops) == len(REQUESTS)  # one per call
    diff = answers(servicer, "Diff", provider_pb2.DiffRequest(urn=URN, id="8901", olds=struct(), news=struct()))
    assert not diff.hasDetailedDiff and diff.changes == provider_pb2.DiffResponse.DIFF_SOME
