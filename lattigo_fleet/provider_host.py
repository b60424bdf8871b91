"""The process that serves our dynamic providers to the Pulumi engine: the SDK's servicer, with three additions.

Pulumi starts `pulumi-resource-pulumi-python` for Python dynamic resources; the stock one runs
`python -m pulumi.dynamic`. The project's engine toolchain (scripts/ensure-pulumi.sh) installs a launcher of
the same name that runs this module instead (falling back to the stock server for projects without it).
It hosts the SDK's own `DynamicResourceProviderServicer`, unchanged in what it does, and adds:

- **Room for a fleet.** The stock server serves 4 operations at once, so a bulk request could never hold more
  than 4 SIMs (an operation waiting for its batch holds a thread). This one has a pool of PROVIDER_WORKERS.
- **Detailed diffs.** A provider's `diff` may return a :class:`DetailedDiffResult` naming the properties that
  change; the engine then shows a reviewer exactly those (`~ cost_center: "a" => "b"`) and not its own diff
  of every stored input. The stock server drops that information (its DiffResult has no such field).
- **Diagnostics on the resource.** :func:`warn` sends a warning to the engine, attached to the resource whose
  request is being served, so that it appears in `pulumi preview` like any other diagnostic. The engine's
  address is the first argument of every resource plugin.
- **Errors in plain words.** A :class:`ProviderError` ends the request with its message alone (the stock server
  sends its whole traceback, or before SDK 3.260 let the gRPC layer report "Exception calling application:
  ..." with the exception's type); any other error ends it with its traceback, as SDK 3.260 does.
- **Less work per call.** Check and Diff come once per SIM per run, Read once per SIM on a refresh: tens of
  thousands of calls at fleet size. The stock methods make an asyncio event loop per call to serialize their
  answer and configure the SDK's settings per call; ours serialize plain data straight into the protobuf Struct
  (the same message) and look a provider up in a cache once it has been configured (see `_servicer_class`).

Without this host (a stock `pulumi` CLI) everything still works: diffs fall back to the engine's own, and
warnings go to the plugin's stderr, which the engine keeps in its log.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2
from pulumi.dynamic import DiffResult

# The gRPC server's thread pool is PROVIDER_WORKERS: engine_settings.py says why, beside the engine's
# parallelism, which is set to the same number.
from lattigo_fleet.engine_settings import PROVIDER_WORKERS

STOCK_WORKERS = 4  # pulumi.dynamic's ThreadPoolExecutor(max_workers=4)

_local = threading.local()
_engine: Any = None  # the engine's gRPC stub, when this host serves the providers
_serving = False


def concurrency() -> int:
    """How many operations can wait in a batch at once: the host's thread pool (the stock server's 4 when
    it is not this host), and never more than the engine hands out (PULUMI_PARALLEL, default 4 x cores)."""
    import os

    pool = PROVIDER_WORKERS if _serving else STOCK_WORKERS
    try:
        engine = int(os.environ.get("PULUMI_PARALLEL") or 0) or 4 * (os.cpu_count() or 1)
    except ValueError:
        engine = 4 * (os.cpu_count() or 1)
    return min(pool, engine)


class ProviderError(Exception):
    """A refusal or failure whose message is complete for a user: shown as it is, no type, no traceback."""


class DetailedDiffResult(DiffResult):
    """A diff that names its changed properties: `{"cost_center": "update", "notes.note1": "add"}`.

    Kinds: add, delete, update (and the same with `_replace`). A pulumi.dynamic.DiffResult, so the stock
    server, which reads only `changes`, `replaces`, `stables` and `delete_before_replace`, still gets a
    correct answer from it."""

    def __init__(
        self,
        detailed: Mapping[str, str],
        *,
        replaces: list[str] | None = None,
        delete_before_replace: bool | None = None,
    ) -> None:
        self.detailed = dict(detailed)
        super().__init__(
            changes=bool(self.detailed), replaces=replaces or [], delete_before_replace=delete_before_replace
        )


def warn(message: str) -> None:
    """A warning for the user, attached to the resource of the request being served."""
    if _engine is None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
        return
    from pulumi.runtime.proto import engine_pb2

    try:
        _engine.Log(
            engine_pb2.LogRequest(severity=engine_pb2.WARNING, message=message, urn=getattr(_local, "urn", "") or "")
        )
    except Exception:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _sdk_servicer_module() -> Any:
    """The SDK's `pulumi/dynamic/__main__.py` as a module, without running it: the file ends in an unguarded
    `main()` that would start the stock server on import. Everything else in it is used as it is."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("pulumi.dynamic.__main__")
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as handle:
        source = handle.read()
    body, tail = source.rstrip().rsplit("\n", 1)
    if tail.strip() != "main()":
        raise RuntimeError(f"unexpected end of {spec.origin}: {tail!r}; check the pinned pulumi SDK")
    module = types.ModuleType("pulumi.dynamic._sdk_servicer")
    module.__file__ = spec.origin
    exec(compile(body, spec.origin, "exec"), module.__dict__)
    return module


class _PlainErrors:
    """The grpc context as the SDK's servicer methods see it. Since SDK 3.260 those methods catch every
    exception themselves and abort with its whole traceback; an abort made while a ProviderError is being
    handled carries the error's message alone. Everything else is the real context's."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.aborted = False

    def abort(self, code: Any, details: str) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ProviderError):
            details = str(error)
        self.aborted = True
        self._context.abort(code, details)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


# The exact types whose values rpc.serialize_properties hands to the Struct unchanged (it walks lists and dicts with
# str keys and keeps everything else as it is). Exact, so that a subclass (an enum, a dict that redefines `items`)
# and everything the SDK transforms (Outputs, unknowns, resources, assets, tuples) take the SDK's own way.
_PLAIN_LEAVES = frozenset({str, bool, int, float, type(None)})


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_plain(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not _is_plain(item):
                return False
        return True
    return kind in _PLAIN_LEAVES


def _plain_struct(values: object) -> struct_pb2.Struct | None:
    """The Struct `rpc.serialize_properties(values, {})` makes of plain JSON data, without its event loop; None when
    a value is anything else. Like the SDK, a top-level None is left out (it treats a property that serializes to
    None as absent) and every other value is set with the Struct's own assignment, in the same order."""
    if type(values) is not dict:
        return None
    struct = struct_pb2.Struct()
    try:
        for key, value in values.items():
            if type(key) is not str or not _is_plain(value):
                return None
            if value is not None:
                struct[key] = value
    except Exception:  # an int too large for a double, say: the SDK's way raises its own error for it
        return None
    return struct


_FAST_PATHS = ("Check", "Create", "Read", "Update")  # the SDK methods the host serves its own way


@dataclass(frozen=True)
class _SdkInternals:
    """What the fast paths take from the SDK beyond its public API."""

    provider_key: str  # the property that carries the serialized provider ("__provider")
    get_provider: Callable[[dict[str, Any], dict[str, Any]], Any]  # deserializes, configures and caches
    deserialize: Callable[..., Any]  # rpc.deserialize_properties
    serialize: Callable[..., Any]  # rpc.serialize_properties (async)
    unknown: str  # rpc.UNKNOWN


# The SDK's result types as the fast paths read them. A later SDK that gives one a new field would have its servicer
# send it; the fast paths would drop it silently, so they step aside instead.
_RESULT_FIELDS = {
    "CheckResult": ["inputs", "failures"],
    "CreateResult": ["id_", "outs"],
    "ReadResult": ["id_", "outs", "inputs"],
    "UpdateResult": ["outs"],
}


def _sdk_internals(sdk: Any, rpc: Any) -> _SdkInternals | None:
    """The SDK internals the fast paths rely on, or None when this SDK lacks one of them (a later SDK may rename
    them): the host then serves Check, Create, Read, Update and Diff with the SDK's own methods, slower and with
    the engine's own diffs, but correct."""
    from pulumi import dynamic

    try:
        internals = _SdkInternals(
            provider_key=sdk.PROVIDER_KEY,
            get_provider=sdk.get_provider,
            deserialize=rpc.deserialize_properties,
            serialize=rpc.serialize_properties,
            unknown=rpc.UNKNOWN,
        )
        servicer = sdk.DynamicResourceProviderServicer
        results = {name: list(inspect.signature(getattr(dynamic, name)).parameters) for name in _RESULT_FIELDS}
    except (AttributeError, TypeError, ValueError):
        return None
    if not (isinstance(internals.provider_key, str) and isinstance(internals.unknown, str)):
        return None
    if not all(callable(getattr(servicer, name, None)) for name in _FAST_PATHS + ("Diff",)):
        return None
    return internals if results == _RESULT_FIELDS else None


def _servicer_class() -> type:
    import grpc
    from pulumi.runtime import proto, rpc

    sdk = _sdk_servicer_module()
    DynamicResourceProviderServicer = sdk.DynamicResourceProviderServicer
    fast = _sdk_internals(sdk, rpc)

    kinds = {
        "add": proto.PropertyDiff.ADD,
        "add_replace": proto.PropertyDiff.ADD_REPLACE,
        "delete": proto.PropertyDiff.DELETE,
        "delete_replace": proto.PropertyDiff.DELETE_REPLACE,
        "update": proto.PropertyDiff.UPDATE,
        "update_replace": proto.PropertyDiff.UPDATE_REPLACE,
    }

    # The servicer's methods take the SDK's generated protobuf messages and a grpc context: untyped at run time.
    Rpc = Callable[[Any, Any, grpc.ServicerContext], Any]

    def served(method: Rpc) -> Rpc:
        """Record the request's URN for `warn`, turn a ProviderError into its message alone and any other error
        into its traceback, whether the SDK's method handles the error itself or lets it through."""

        def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            _local.urn = getattr(request, "urn", "")
            plain = _PlainErrors(context)
            try:
                return method(self, request, plain)
            except ProviderError as exc:
                context.abort(grpc.StatusCode.UNKNOWN, str(exc))
            except Exception:
                if plain.aborted:  # the SDK ended the request itself: what abort raises goes on to grpc
                    raise
                context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())
            finally:
                _local.urn = ""

        wrapper.__name__ = method.__name__
        return wrapper

    def serialized(values: Any) -> struct_pb2.Struct:
        """What the SDK's methods send for these values: plain data straight into the Struct, anything else the
        SDK's own way, an event loop per call, exactly as its methods do it."""
        assert fast is not None
        struct = _plain_struct(values)
        if struct is not None:
            return struct
        loop = asyncio.new_event_loop()
        try:
            result: struct_pb2.Struct = loop.run_until_complete(fast.serialize(values, {}))
        finally:
            loop.close()
        return result

    class FleetProviderServicer(DynamicResourceProviderServicer):  # type: ignore[valid-type,misc] # loaded at run time
        """The SDK's servicer; each fast path below is its method of the same name, step for step, but for how the
        answer is serialized and how the provider is found."""

        def __init__(self) -> None:
            super().__init__()
            self._providers: dict[str, Any] = {}

        def _provider(self, props: dict[str, Any]) -> Any:
            """The provider the properties name. The first time a serialized provider is seen, the SDK's
            get_provider deserializes and configures it and configures the SDK's settings (project, stack); after
            that it comes from the cache, without either. Skipping the settings is safe: grpc serves each call in
            a fresh contextvars.Context, where the SDK's settings read as the values its last configure set (a
            ContextProperty keeps them as its default), so a cached call sees the same project and stack."""
            assert fast is not None
            key = props[fast.provider_key]
            if type(key) is str:
                provider = self._providers.get(key)
                if provider is None:
                    provider = self._providers[key] = fast.get_provider(props, self._config)
                return provider
            return fast.get_provider(props, self._config)  # not a serialized provider: the SDK's error for it

        def _checking_provider(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
            """Check's and Diff's provider: the old one while the new one is not known yet, as in the SDK."""
            assert fast is not None
            return self._provider(olds if news[fast.provider_key] == fast.unknown else news)

        def Diff(self, request: Any, context: grpc.ServicerContext) -> Any:
            if fast is None:
                return DynamicResourceProviderServicer.Diff(self, request, context)
            olds = fast.deserialize(request.olds, True)
            news = fast.deserialize(request.news, True)
            result = self._checking_provider(olds, news).diff(request.id, olds, news)
            if not isinstance(result, DetailedDiffResult):
                return DynamicResourceProviderServicer.Diff(self, request, context)
            fields: dict[str, Any] = {
                "changes": proto.DiffResponse.DIFF_SOME if result.changes else proto.DiffResponse.DIFF_NONE,
                "replaces": result.replaces,
                "diffs": sorted({path.split(".", 1)[0] for path in result.detailed}),
                "detailedDiff": {
                    path: proto.PropertyDiff(kind=kinds[kind], inputDiff=True) for path, kind in result.detailed.items()
                },
                "hasDetailedDiff": True,
            }
            if result.delete_before_replace is not None:
                fields["deleteBeforeReplace"] = result.delete_before_replace
            return proto.DiffResponse(**fields)

        def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
            assert fast is not None
            olds = fast.deserialize(request.olds, True)
            news = fast.deserialize(request.news, True)
            result = self._checking_provider(olds, news).check(olds, news)
            inputs = result.inputs
            inputs[fast.provider_key] = news[fast.provider_key]
            failures = [proto.CheckFailure(property=f.property, reason=f.reason) for f in result.failures]
            return proto.CheckResponse(inputs=serialized(inputs), failures=failures)

        def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
            assert fast is not None
            props = fast.deserialize(request.properties)
            result = self._provider(props).create(props)
            outs = result.outs if result.outs is not None else {}
            outs[fast.provider_key] = props[fast.provider_key]
            return proto.CreateResponse(id=result.id, properties=serialized(outs))

        def Read(self, request: Any, context: grpc.ServicerContext) -> Any:
            assert fast is not None
            props = fast.deserialize(request.properties)
            result = self._provider(props).read(request.id, props)
            outs = result.outs
            outs[fast.provider_key] = props[fast.provider_key]
            fields = {"id": result.id, "properties": serialized(outs)}
            # Explicit inputs from the provider replace the stored ones for later diffs (the SDK's rule).
            if result.inputs is not None:
                inputs = result.inputs.copy()
                inputs[fast.provider_key] = props[fast.provider_key]
                fields["inputs"] = serialized(inputs)
            return proto.ReadResponse(**fields)

        def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
            assert fast is not None
            olds = fast.deserialize(request.olds)
            news = fast.deserialize(request.news)
            result = self._provider(news).update(request.id, olds, news)
            outs = result.outs if result.outs is not None else {}
            outs[fast.provider_key] = news[fast.provider_key]
            return proto.UpdateResponse(properties=serialized(outs))

    if fast is None:  # an SDK without what the fast paths need: its own methods serve
        for name in _FAST_PATHS:
            delattr(FleetProviderServicer, name)
    for name in ("Check", "Diff", "Create", "Read", "Update", "Delete"):
        setattr(FleetProviderServicer, name, served(getattr(FleetProviderServicer, name)))
    return FleetProviderServicer


def _exit_with_parent(interval: float = 0.5) -> None:
    """End this process when the engine that started it is gone (a CI timeout kills `pulumi` alone): a provider
    left running would go on sending calls nobody will record. Safe, because every run plans against the live
    account: whatever was cut short is finished by the next one."""
    import os

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str]) -> None:
    global _engine, _serving
    import os

    import grpc
    from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
    from pulumi.runtime.proto import engine_pb2_grpc, provider_pb2_grpc

    engine_address = next((a for a in argv if not a.startswith("-")), None)
    if engine_address:
        _engine = engine_pb2_grpc.EngineStub(grpc.insecure_channel(engine_address, options=_GRPC_CHANNEL_OPTIONS))
    _serving = True
    _exit_with_parent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=PROVIDER_WORKERS), options=_GRPC_CHANNEL_OPTIONS)
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(_servicer_class()(), server)
    port = server.add_insecure_port(address="127.0.0.1:0")
    server.start()
    stopped = _stop_when_asked()
    sys.stdout.buffer.write(f"{port}\n".encode())
    sys.stdout.flush()
    stopped.wait()
    server.stop(0)
    # Nothing is left to finish: every bulk request in flight was answered before the engine asked us to stop,
    # and the next run plans against the live account. Waiting for idle pool threads only delays the engine.
    os._exit(0)


def _stop_when_asked() -> threading.Event:
    """The engine closes a plugin with SIGINT to its process group, then waits 5 s before SIGKILL. A process
    started with SIGINT ignored (a CI step's background job, `nohup`, `cmd &` in a script) inherits that, and
    Python then installs no handler of its own: every run started that way waited those 5 s at its end. So
    both signals are asked for here, whatever was inherited."""
    import signal

    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    return stopped


if __name__ == "__main__":
    main(sys.argv[1:])
