"""Running the emulator: in-process (:class:`EmulatorServer`, for pytest and the demo) or in the foreground
(``lattigo-fleet emulator``, through :func:`add_arguments` and :func:`run_from_args`). Waitress serves it.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date
from types import TracebackType
from typing import Any

from waitress import create_server, wasyncore

from emulator.app import create_app
from emulator.faults import Faults
from emulator.http import RequestLog
from emulator.models import Backend

DEFAULT_ACTIVATION_DELAY = 2.0
DEFAULT_THREADS = 8


class EmulatorServer:
    """The emulator on loopback, in a background thread. ``start()`` returns once it accepts requests.

    >>> with EmulatorServer(key_name="k", api_key="s", activation_delay=0) as srv:
    ...     srv.base_url  # doctest: +SKIP
    'http://127.0.0.1:54321'
    """

    def __init__(
        self,
        db: str = ":memory:",
        seed: str = "empty",
        key_name: str | None = "emulator-key",
        api_key: str | None = "emulator-secret",
        activation_delay: float = DEFAULT_ACTIVATION_DELAY,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Sequence[tuple[str, str]] | None = None,
        rate_limit_per_second: float | None = None,
        error_rate: float = 0.0,
        latency_ms: float = 0,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        pairs: list[tuple[str, str]] = []
        if key_name is not None and api_key is not None:
            pairs.append((key_name, api_key))
        for pair in keys or ():
            if tuple(pair) not in pairs:
                pairs.append((pair[0], pair[1]))
        self.key_name = pairs[0][0] if pairs else None
        self.api_key = pairs[0][1] if pairs else None
        self.keys = pairs
        self.host = host
        self.port = port
        self.threads = threads
        self.activation_delay = float(activation_delay)
        self.backend = Backend(db=db, keys=pairs, activation_delay=activation_delay, seed=seed)
        # the rate limiter's buckets refill on the emulated clock: advancing it (admin API, advance_clock)
        # is waiting, for them too
        self.faults = Faults(rate_limit_per_second, error_rate, latency_ms, clock=self.backend.store.clock.timestamp)
        self.log = RequestLog()
        self.app = create_app(self.backend, self.faults, self.log)
        self._map: dict[Any, Any] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        """The first key pair, for ``requests``' ``auth=``."""
        assert self.key_name is not None and self.api_key is not None
        return (self.key_name, self.api_key)

    def start(self) -> EmulatorServer:
        if self._server is not None:
            return self
        self._server = create_server(
            self.app, map=self._map, host=self.host, port=self.port, threads=self.threads, ident="lattigo-emulator"
        )
        self.port = int(self._server.effective_port)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="lattigo-emulator", daemon=True)
        self._thread.start()
        self._wait_ready()
        return self

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=0.2, map=self._map, use_poll=True, count=1)
        finally:
            self._server.task_dispatcher.shutdown(timeout=5)
            wasyncore.close_all(self._map)

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                conn.request("GET", "/_emulator/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        try:
            self._server.pull_trigger()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self.backend.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- in-process admin shortcuts (same effects as the /_emulator/ endpoints) -----------------

    def reset(self, seed: str | None = None, activation_delay: float | None = None) -> None:
        """Wipe state (reseed), clear faults and the request log; the activation delay goes back to the
        server's own unless given."""
        self.backend.activation_delay = self.activation_delay if activation_delay is None else activation_delay
        self.backend.reset(seed)
        self.faults.clear()
        self.log.clear()

    def tick(self) -> int:
        return self.backend.tick()

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        return self.faults.update(settings)

    def requests_log(self) -> list[dict[str, Any]]:
        return self.log.entries()

    def clear_requests(self) -> None:
        self.log.clear()

    def add_sims(self, sims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.backend.admin.upsert_sims(sims)

    def sims(self, account: str = "primary") -> list[dict[str, Any]]:
        return self.backend.admin.sims_view(account)

    def record_usage(self, iccid: str, day: date | str, bytes_used: int, sms: int = 0) -> None:
        if isinstance(day, str):
            day = date.fromisoformat(day)
        self.backend.usage.record_usage(iccid, day, bytes_used, sms)

    def advance_clock(self, seconds: float) -> None:
        self.backend.advance_clock(seconds)


# ---- the command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 picks a free port)")
    parser.add_argument("--db", default=":memory:", help="SQLite file that keeps the state (default :memory:)")
    parser.add_argument("--seed", choices=("demo", "empty"), default="empty", help="initial data of a new db")
    parser.add_argument("--key-name", default="emulator-key", help="the API key_name (and ThingSpace app key)")
    parser.add_argument("--api-key", default="emulator-secret", help="the API api_key (and ThingSpace secret)")
    parser.add_argument(
        "--extra-key",
        action="append",
        default=[],
        metavar="NAME:KEY",
        help="another key pair of the same account (up to five pairs in all)",
    )
    parser.add_argument(
        "--activation-delay",
        type=float,
        default=DEFAULT_ACTIVATION_DELAY,
        metavar="SECONDS",
        help=f"how long queued activations and suspensions take (default {DEFAULT_ACTIVATION_DELAY}; 0 allowed)",
    )
    parser.add_argument("--rate-limit-per-second", type=float, default=None, help="token-bucket rate limit per key")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of API requests answering 500")
    parser.add_argument("--latency-ms", type=float, default=0, help="latency added to every API request")


def run_from_args(args: argparse.Namespace) -> int:
    extra = []
    for item in getattr(args, "extra_key", []) or []:
        name, sep, key = item.partition(":")
        if not sep or not name or not key:
            print(f"--extra-key must be NAME:KEY, got {item!r}", file=sys.stderr)
            return 2
        extra.append((name, key))
    if args.activation_delay < 0:
        print("--activation-delay must not be negative", file=sys.stderr)
        return 2
    try:
        srv = EmulatorServer(
            db=args.db,
            seed=args.seed,
            key_name=args.key_name,
            api_key=args.api_key,
            activation_delay=args.activation_delay,
            host=args.host,
            port=args.port,
            keys=extra,
            rate_limit_per_second=args.rate_limit_per_second,
            error_rate=args.error_rate,
            latency_ms=args.latency_ms,
        )
    except ValueError as exc:
        print(f"lattigo emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        srv.start()
        print(f"lattigo emulator listening on {srv.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
