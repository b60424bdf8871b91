"""Registering Sims with the engine in one request each, without the SDK's per-resource machinery.

`Sim(...)` (a `pulumi.dynamic.Resource`) costs the program about 5 ms of CPU per SIM, as much as a whole
no-change step costs the engine: the SDK pickles the provider again for every resource, makes a dozen
Outputs (each an asyncio task with its futures), sends four synchronous `Engine.Log` debug records (which the
engine in turn writes to its own log), hands the request to a thread, and then resolves every Output, while
`wait_for_rpcs` re-scans all pending ones at each wake-up. A fleet's Sims need none of it: their inputs are
plain data (fleet.yaml's values), nothing in the program reads their outputs, and what the program waits for
is each registration's answer.

So the fleet program sends each Sim's `RegisterResourceRequest` itself: the same message the SDK sends for
`Sim(name, inputs, ResourceOptions(deleted_with=guard))` with the stack-trace lever on (a test builds both and
compares them field by field, so an SDK that changes what it sends is caught), on the SDK's own monitor
connection, as a gRPC future (no thread per registration). The provider is pickled once.

What this path does not do, it leaves to the SDK: aliases (the one upgrade run), and any SDK without the
pieces used here (`available()` says no and the program registers through `Sim` as before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pulumi
from google.protobuf import struct_pb2

from providers.sim import Sim, SimProvider


def available() -> bool:
    """Whether this SDK has what the lean path uses; without it, Sims register through the SDK."""
    try:
        from pulumi.dynamic.dynamic import serialize_provider  # noqa: F401
        from pulumi.runtime.proto import resource_pb2, source_pb2  # noqa: F401
        from pulumi.runtime.settings import get_monitor, grpc_error_to_exception  # noqa: F401
    except ImportError:
        return False
    return hasattr(Sim, "_resource_type_name") and hasattr(resource_pb2, "RegisterResourceRequest")


def sim_type() -> str:
    """The type token the SDK gives a Sim (pulumi.dynamic.Resource: `pulumi-python:` + its type name)."""
    return f"pulumi-python:{Sim._resource_type_name}"


def provider_reference() -> str:
    """The pickled SimProvider as every Sim carries it in `__provider`: plain (SimProvider holds nothing secret,
    serialize_as_secret_always is off), and the same for every Sim, so pickled once."""
    from pulumi.dynamic.dynamic import serialize_provider

    assert not SimProvider.serialize_as_secret_always, "a secret provider needs the SDK's path"
    reference: str = serialize_provider(SimProvider())
    return reference


def properties(inputs: Mapping[str, Any], provider: str) -> struct_pb2.Struct:
    """A Sim's inputs as the SDK serializes plain data: top-level None values are left out (the SDK drops an
    input that is None), nested ones stay null, numbers are doubles."""
    struct = struct_pb2.Struct()
    struct.update({key: value for key, value in inputs.items() if value is not None})
    struct.fields["__provider"].string_value = provider
    return struct


class Registrar:
    """Sends Sim registrations on the SDK's monitor connection; one per run, made once the parent (the
    stack) and the guard (deleted_with) have their URNs."""

    def __init__(self, monitor: Any, *, parent_urn: str, deleted_with_urn: str, provider: str) -> None:
        self._monitor = monitor
        self._parent_urn = parent_urn
        self._deleted_with_urn = deleted_with_urn
        self._provider = provider
        self._type = sim_type()

    @classmethod
    async def for_run(cls, deleted_with: pulumi.Resource) -> Registrar:
        from pulumi.runtime.settings import get_monitor, get_root_resource

        root = get_root_resource()
        assert root is not None, "registering outside a Pulumi program"
        return cls(
            get_monitor(),
            parent_urn=await root.urn.future() or "",
            deleted_with_urn=await deleted_with.urn.future() or "",
            provider=provider_reference(),
        )

    def request(self, name: str, inputs: Mapping[str, Any]) -> Any:
        """The RegisterResourceRequest the SDK would send for this Sim (see the module's docstring)."""
        from pulumi.runtime.proto import resource_pb2, source_pb2

        struct = properties(inputs, self._provider)
        return resource_pb2.RegisterResourceRequest(
            type=self._type,
            name=name,
            parent=self._parent_urn,
            custom=True,
            object=struct,
            # The SDK names every input it sends, with no dependencies (a Sim's inputs are plain values).
            propertyDependencies={key: resource_pb2.RegisterResourceRequest.PropertyDependencies() for key in struct},
            acceptSecrets=True,
            acceptResources=True,
            supportsPartialValues=True,
            deletedWith=self._deleted_with_urn,
            supportsResultReporting=True,
            hooks=resource_pb2.RegisterResourceRequest.ResourceHooksBinding(),
            stackTrace=source_pb2.StackTrace(),
        )

    async def register(self, name: str, inputs: Mapping[str, Any]) -> str:
        """Register one Sim; its URN once the engine answered (after its step, in an update). A step that
        failed is reported by the engine itself, as for the SDK's path; a broken connection raises what the
        SDK raises (the engine going away is "Resource monitor has terminated")."""
        import grpc
        from pulumi.runtime.settings import grpc_error_to_exception

        request = self.request(name, inputs)
        loop = asyncio.get_running_loop()
        send = self._monitor.RegisterResource
        try:
            if hasattr(send, "future"):  # a gRPC stub: answered on gRPC's own thread, no thread of ours waits
                answered: asyncio.Future[Any] = loop.create_future()
                call = send.future(request)

                def deliver(done: Any) -> None:
                    loop.call_soon_threadsafe(_settle, answered, done)

                call.add_done_callback(deliver)
                response = await answered
            else:  # the SDK's mock monitor (tests): a plain blocking method
                response = await loop.run_in_executor(None, send, request)
        except grpc.RpcError as exc:
            raise grpc_error_to_exception(exc) from None
        urn: str = response.urn
        return urn


def _settle(answered: asyncio.Future[Any], call: Any) -> None:
    if answered.done():
        return
    try:
        answered.set_result(call.result())
    except BaseException as exc:  # the call's error (a grpc.RpcError), raised in the awaiting task
        answered.set_exception(exc)
