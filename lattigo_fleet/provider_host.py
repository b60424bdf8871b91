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

Without this host (a stock `pulumi` CLI) everything still works: diffs fall back to the engine's own, and
warnings go to the plugin's stderr, which the engine keeps in its log.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent import futures
from typing import Any

from pulumi.dynamic import DiffResult

# The gRPC server's thread pool. The SDK's own server has 4 threads, so at most 4 SIMs can ever share a bulk
# request; ours is sized for fleets: an operation waiting for its batch holds a thread, so the SIMs of a full
# bulk request (the API takes 500) can all wait for it only with at least 500. With 256, the 1,000-SIM
# change (500 moves to one cost center) took two requests for them. The engine's parallelism (PULUMI_PARALLEL,
# see lattigo_fleet/engine_settings.py) is set to the same number.
PROVIDER_WORKERS = 512
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


def _servicer_class() -> type:
    import grpc
    from pulumi.runtime import proto, rpc

    sdk = _sdk_servicer_module()
    PROVIDER_KEY, DynamicResourceProviderServicer, get_provider = (
        sdk.PROVIDER_KEY,
        sdk.DynamicResourceProviderServicer,
        sdk.get_provider,
    )

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

    class FleetProviderServicer(DynamicResourceProviderServicer):  # type: ignore[valid-type,misc] # loaded at run time
        def Diff(self, request: Any, context: grpc.ServicerContext) -> Any:
            olds = rpc.deserialize_properties(request.olds, True)
            news = rpc.deserialize_properties(request.news, True)
            provider = get_provider(olds if news[PROVIDER_KEY] == rpc.UNKNOWN else news, self._config)
            result = provider.diff(request.id, olds, news)
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
