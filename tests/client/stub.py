"""A scriptable loopback HTTP server for the few wire behaviours the emulator does not produce on demand
(a server that caps ``per_page``, pages without ``X-Next-Page``, a dropped connection).

Each test sets ``stub.handler(request) -> (status, headers, body)``; every request is recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class StubRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Reply = tuple[int, dict[str, str], Any]


@dataclass
class Stub:
    base_url: str = ""
    requests: list[StubRequest] = field(default_factory=list)
    handler: Callable[[StubRequest], Reply | None] = lambda req: (404, {}, {"error": "no handler"})


def start_stub() -> tuple[Stub, ThreadingHTTPServer]:
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode()
            parts = urlsplit(self.path)
            req = StubRequest(
                method=self.command,
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            stub.requests.append(req)
            reply = stub.handler(req)
            if reply is None:  # drop the connection without an answer
                self.close_connection = True
                self.connection.close()
                return
            status, headers, payload = reply
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    stub.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    return stub, server
