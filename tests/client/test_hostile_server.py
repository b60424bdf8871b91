"""A malformed, hostile server, and the client ending each of its tricks in a typed error within its bound.

Issue "Hostile inputs, hostile servers": endless pagination, huge ``Retry-After``, slow-loris bodies, huge
and deeply nested bodies, 200 answers of the wrong shape, redirects off the configured endpoint. The
server is a loopback ``http.server`` on port 0 whose every answer is written by the test (raw, so that it
can trickle, lie about lengths or never end); it serves in daemon threads, each answer is bounded (a
trickle stops after a few seconds at most) and it is shut down after each test. The bounds are small so
that the tests run in seconds; they assert the error and its ``bound``, never a duration.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lattigo_fleet.client import (
    ActivationRow,
    DeadlineExceeded,
    LattigoClient,
    RateLimitBudgetExceeded,
    RateLimited,
    ThingSpaceClient,
    UnexpectedAnswer,
    UnsafeRedirect,
    shapes,
)
from tests.client.conftest import Clock

KEY, SECRET = "hostile-key", "hostile-secret-value"
ICCID, IMEI = "8901" + "7" * 16, "351234567890123"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: bytes


@dataclass
class Hostile:
    """``answer(handler, seen)`` writes the whole answer (use :func:`reply` or raw ``handler.wfile``)."""

    base_url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answer: Callable[[BaseHTTPRequestHandler, Seen], None] = lambda h, s: reply(h, 404, {"error": "none"})


def reply(h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


def start(hostile: Hostile) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body leave in one write (no delayed-ACK stall per answer)

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            seen = Seen(self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}, body)
            hostile.seen.append(seen)
            try:
                hostile.answer(self, seen)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up on us: as it should
                self.close_connection = True

        do_GET = do_POST = do_PUT = _serve

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:  # a client hanging up on a trickle
            pass

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    hostile.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    h = Hostile()
    server = start(h)
    yield h
    server.shutdown()
    server.server_close()


def client(h: Hostile, clock: Clock | None = None, **kw: Any) -> LattigoClient:
    clock = clock or Clock()
    kw.setdefault("max_retries", 2)
    kw.setdefault("timeout", 5)
    return LattigoClient(h.base_url, KEY, SECRET, sleep=clock.sleep, clock=clock, **kw)


# --- 1. no overall deadline ----------------------------------------------------------------------------


def test_endless_next_page_stops_at_max_pages(hostile: Hostile) -> None:
    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        page = int(seen.query["page"])
        reply(h, 200, [f"device-{page}"], {"X-Page": str(page), "X-Next-Page": str(page + 1)})

    hostile.answer = answer
    with pytest.raises(DeadlineExceeded) as info:
        list(client(hostile, max_pages=25).devices(details=False))
    assert info.value.bound == "pages" and info.value.limit == 25
    assert "pages bound (25 pages)" in str(info.value)
    assert len(hostile.seen) == 25


def test_listing_stops_when_the_servers_total_pages_says_it_is_done(hostile: Hostile) -> None:
    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        page = int(seen.query["page"])  # X-Next-Page lies forever; X-Total-Pages does not
        headers = {"X-Page": str(page), "X-Next-Page": str(page + 1), "X-Total-Pages": "3"}
        reply(h, 200, [f"device-{page}"], headers)

    hostile.answer = answer
    assert list(client(hostile).devices(details=False)) == ["device-1", "device-2", "device-3"]
    assert len(hostile.seen) == 3


def test_listing_stops_when_the_servers_total_says_every_item_came(hostile: Hostile) -> None:
    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        page = int(seen.query["page"])
        reply(h, 200, [f"d{page}a", f"d{page}b"], {"X-Next-Page": str(page + 1), "X-Total": "4"})

    hostile.answer = answer
    assert list(client(hostile).devices(details=False)) == ["d1a", "d1b", "d2a", "d2b"]
    assert len(hostile.seen) == 2


def test_a_page_that_repeats_is_an_unexpected_answer(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, ["same", "page"], {"X-Next-Page": str(int(seen.query["page"]) + 1)})
    with pytest.raises(UnexpectedAnswer, match="page 2 repeats page 1"):
        list(client(hostile).devices(details=False))
    assert len(hostile.seen) == 2


def test_a_huge_retry_after_fails_at_once(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 429, {"error": "go away"}, {"Retry-After": "100000"})
    clock = Clock()
    with pytest.raises(RateLimitBudgetExceeded) as info:
        client(hostile, clock).rate_plans()
    err = info.value
    assert isinstance(err, RateLimited) and err.bound == "retry_budget" and err.retry_after == 100000.0
    assert clock.waits == [] and len(hostile.seen) == 1


def test_retries_share_one_budget(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 429, {"error": "busy"}, {"Retry-After": "1"})
    clock = Clock()
    with pytest.raises(RateLimitBudgetExceeded) as info:
        client(hostile, clock, retry_budget=4).users()
    assert info.value.bound == "retry_budget" and info.value.limit == 4
    assert sum(clock.waits) <= 4 and len(hostile.seen) == len(clock.waits) + 1 >= 3


@pytest.mark.parametrize("retry_after", ["0", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_zero_retry_after_storm_is_paced_and_ends_within_the_budget(hostile: Hostile, retry_after: str) -> None:
    hostile.answer = lambda h, seen: reply(h, 429, {"error": "busy"}, {"Retry-After": retry_after})
    clock = Clock()
    with pytest.raises(RateLimitBudgetExceeded) as info:
        client(hostile, clock, retry_budget=6).users()
    assert info.value.bound == "retry_budget"
    assert sum(clock.waits) <= 6 and min(clock.waits) > 0  # never sent back to back


def test_a_retry_after_on_a_5xx_beyond_the_budget_fails_at_once(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 503, {"error": "maintenance"}, {"Retry-After": "50"})
    with pytest.raises(DeadlineExceeded) as info:
        client(hostile, retry_budget=10).device(ICCID)
    assert info.value.bound == "retry_budget" and info.value.status == 503
    assert len(hostile.seen) == 1


def trickle(total: int, pause: float) -> Callable[[BaseHTTPRequestHandler, Seen], None]:
    """Announce ``total`` bytes, then send one every ``pause`` seconds (at most 5 s of it)."""

    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        h.wfile.flush()
        stop = time.monotonic() + 5
        for _ in range(total):
            if time.monotonic() > stop:
                break
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(pause)
        h.close_connection = True

    return answer


def test_a_slow_loris_body_hits_the_response_time_bound(hostile: Hostile) -> None:
    hostile.answer = trickle(10_000, 0.02)  # each byte well inside the socket timeout, the whole never
    with pytest.raises(DeadlineExceeded) as info:
        client(hostile, response_timeout=0.4, timeout=2).device(ICCID)
    assert info.value.bound == "response_time" and info.value.limit == 0.4
    assert "response_time bound (0.4 s)" in str(info.value)
    assert len(hostile.seen) == 1  # not retried: the next answer would trickle just the same


def test_a_body_larger_than_announced_cap_is_refused_unread(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, b"[" + b"1," * 600_000 + b"1]")
    with pytest.raises(DeadlineExceeded) as info:
        client(hostile, max_body_bytes=1024 * 1024).users()
    assert info.value.bound == "body_size" and info.value.limit == 1024 * 1024


def test_an_unannounced_endless_body_stops_at_the_cap(hostile: Hostile) -> None:
    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Connection", "close")
        h.end_headers()
        for _ in range(64):  # up to 4 MiB, no Content-Length: the client must stop reading on its own
            h.wfile.write(b"[" * 65536)
        h.close_connection = True

    hostile.answer = answer
    with pytest.raises(DeadlineExceeded) as info:
        client(hostile, max_body_bytes=512 * 1024).rate_plans()
    assert info.value.bound == "body_size"


def test_a_gzip_bomb_is_capped_after_decompression(hostile: Hostile) -> None:
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    hostile.answer = lambda h, seen: reply(h, 200, bomb, {"Content-Encoding": "gzip"})
    with pytest.raises(DeadlineExceeded) as info:
        client(hostile, max_body_bytes=1024 * 1024).device(ICCID)
    assert info.value.bound == "body_size"


# --- 2. a 200 that is not the documented shape is not a success ---------------------------------------


WRONG_ROWS: list[Any] = [  # JSON answers
    {"error": "internal failure"},
    [],
    {},
    "OK",
    None,
    {"processed": "all", "unprocessed": []},
    {"processed": [], "unprocessed": {"0": "bad"}},
    {"processed": [1, 2], "unprocessed": []},
]


@pytest.mark.parametrize("body", WRONG_ROWS, ids=[json.dumps(b) for b in WRONG_ROWS])
def test_activation_answered_200_of_the_wrong_shape_accepts_nothing(hostile: Hostile, body: Any) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, b"" if body is None else body)
    with pytest.raises(UnexpectedAnswer) as info:
        client(hostile).activate([ActivationRow(ICCID, IMEI)], "plan")
    assert info.value.endpoint == "v2/device_operations/activation_request" and info.value.status == 200
    assert "expected a {processed, unprocessed} object" in str(info.value)


@pytest.mark.parametrize("body", [{}, [], "Success", {"x": 5}, None])
def test_set_note_answered_200_of_the_wrong_shape_fails(hostile: Hostile, body: Any) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, b"" if body is None else body)
    with pytest.raises(UnexpectedAnswer, match="v2/devices/"):
        client(hostile).set_note(ICCID, "note", "hello")


def test_device_answered_with_an_error_object_is_not_a_device(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, {"error": "Device not found"})
    with pytest.raises(UnexpectedAnswer) as info:
        client(hostile).device(ICCID)
    assert "expected a device object" in str(info.value) and "is a required property" in str(info.value)


def test_bulk_status_of_the_wrong_type_fails_those_devices(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, {"change_status": {"1": True, "2": "Success"}})
    result = client(hostile).change_simstate(["1", "2"], "suspend", id_type="device_name")
    assert result.succeeded == [] and set(result.failed) == {"1", "2"}
    assert all(reason.startswith("UnexpectedAnswer") for reason in result.failed.values())


# --- 3. tracebacks on malformed answers ----------------------------------------------------------------


DEEP = b"[" * 1_000_000


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.device(ICCID),
        lambda c: c.rate_plans(),
        lambda c: c.users(),
        lambda c: c.snapshot(),
        lambda c: c.set_note(ICCID, "note", "x"),
        lambda c: c.activate([ActivationRow(ICCID, IMEI)], "plan"),
        lambda c: c.change_simstate([ICCID], "suspend"),
    ],
    ids=["device", "rate_plans", "users", "snapshot", "set_note", "activate", "change_simstate"],
)
def test_deeply_nested_json_is_an_unexpected_answer_not_a_recursion_error(
    hostile: Hostile, call: Callable[[LattigoClient], Any]
) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, DEEP)
    c = client(hostile)
    try:
        result = call(c)
    except UnexpectedAnswer as exc:
        assert "nests too deeply" in str(exc)
    else:  # a bulk call contains a failed chunk to its own devices
        assert "nests too deeply" in result.failed[ICCID]


def test_a_moderately_deep_error_body_is_described_without_recursion(hostile: Hostile) -> None:
    body = b'{"error": ' + b"[" * 60 + b"]" * 60 + b"}"
    hostile.answer = lambda h, seen: reply(h, 500, body)
    result = client(hostile, max_retries=0).send_sms(["5"], "hi")
    assert "ServerError" in result.failed["5"]


@pytest.mark.parametrize("body", [["ACME"], [{"name": 5}], [{"cost": 1}], [None], {"name": "x"}])
def test_rate_plans_are_objects_with_a_string_name_or_an_error(hostile: Hostile, body: Any) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, body)
    with pytest.raises(UnexpectedAnswer, match="rate plan"):
        client(hostile).rate_plans()


@pytest.mark.parametrize("body", [[{"username": "x"}], [5], [None], "ops"])
def test_users_are_strings_or_an_error(hostile: Hostile, body: Any) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, body)
    with pytest.raises(UnexpectedAnswer, match="usernames"):
        client(hostile).users()


def test_not_json_is_an_unexpected_answer(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 200, b"<html>maintenance</html>")
    with pytest.raises(UnexpectedAnswer, match="not JSON"):
        client(hostile).device(ICCID)


@pytest.fixture
def elsewhere() -> Iterator[Hostile]:
    h = Hostile(answer=lambda h, seen: reply(h, 200, {"processed": [], "unprocessed": []}))
    server = start(h)
    yield h
    server.shutdown()
    server.server_close()


def test_a_redirect_to_another_host_is_not_followed_and_the_body_stays_home(
    hostile: Hostile, elsewhere: Hostile
) -> None:
    target = elsewhere.base_url.replace("127.0.0.1", "localhost") + "/v2/device_operations/activation_request"
    hostile.answer = lambda h, seen: reply(h, 307, {}, {"Location": target})
    with pytest.raises(UnsafeRedirect) as info:
        client(hostile).activate([ActivationRow(ICCID, IMEI)], "plan")
    assert "off the configured endpoint" in str(info.value) and info.value.status == 307
    assert elsewhere.seen == [] and len(hostile.seen) == 1
    assert SECRET not in str(info.value)


def test_a_redirect_to_another_port_is_not_followed(hostile: Hostile, elsewhere: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 302, {}, {"Location": elsewhere.base_url + "/v2/users"})
    with pytest.raises(UnsafeRedirect):
        client(hostile).users()
    assert elsewhere.seen == []


def test_a_same_origin_307_is_followed_with_its_body(hostile: Hostile) -> None:
    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        if seen.path.endswith("/old"):
            reply(h, 307, {}, {"Location": "/v2/device_operations/activation_request"})
        else:
            reply(h, 200, {"processed": [{"iccid": ICCID}], "unprocessed": []})

    hostile.answer = answer
    c = client(hostile)
    result = c._http.send(
        "POST",
        "v2/device_operations/old",
        {"activation_requests": [{"iccid": ICCID}]},
        devices=[ICCID],
        read=lambda answer: (answer.data, {}),
        shape=shapes.ROWS,
    )
    assert result["processed"] == [{"iccid": ICCID}]
    assert [s.path for s in hostile.seen] == ["/v2/device_operations/old", "/v2/device_operations/activation_request"]
    assert hostile.seen[0].body == hostile.seen[1].body


def test_a_303_after_a_post_is_not_turned_into_a_get(hostile: Hostile) -> None:
    hostile.answer = lambda h, seen: reply(h, 303, {}, {"Location": "/v2/elsewhere"})
    with pytest.raises(UnsafeRedirect, match="into a GET"):
        client(hostile).activate([ActivationRow(ICCID, IMEI)], "plan")
    assert len(hostile.seen) == 1


# --- the ThingSpace client: redirects and clear-text endpoints (as the Lattigo client) ---------------------


def thingspace(h: Hostile) -> ThingSpaceClient:
    return ThingSpaceClient(h.base_url, "app-key", "app-secret", "uws-user", "uws-password", max_retries=0, timeout=5)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("step", ["token", "login", "usage"])
def test_the_thingspace_client_never_follows_a_redirect_to_another_host(
    hostile: Hostile, elsewhere: Hostile, status: int, step: str
) -> None:
    from lattigo_fleet.client import ThingSpaceError

    target = elsewhere.base_url.replace("127.0.0.1", "localhost") + "/steal"

    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        if step in seen.path or (step == "token" and seen.path.endswith("/oauth2/token")):
            reply(h, status, {}, {"Location": target})
        elif seen.path.endswith("/oauth2/token"):
            reply(h, 200, {"access_token": "api-token", "expires_in": 3600})
        elif "session/login" in seen.path:
            reply(h, 200, {"sessionToken": "session-token"})
        else:
            reply(h, 200, {"usageHistory": [], "hasMoreData": False})

    hostile.answer = answer
    with pytest.raises(ThingSpaceError) as info:
        thingspace(hostile).daily_usage(ICCID, "2026-11-01", "2026-11-02")
    assert elsewhere.seen == [], "nothing, and no credential, went to the other host"
    assert "redirect" in str(info.value) and "not followed" in str(info.value)
    for secret in ("app-secret", "uws-password", "session-token", "api-token"):
        assert secret not in str(info.value)


@pytest.mark.parametrize(
    "url, refused",
    [
        ("http://api.example.com", True),
        ("http://10.0.0.5:8080", True),
        ("HTTP://api.example.com", True),
        ("ftp://api.example.com", True),
        # Accepted (then nothing listens there: a connection error, not a refusal).
        ("https://127.0.0.1:9", False),
        ("http://127.0.0.1:9", False),
        ("http://localhost:9", False),
        ("http://[::1]:9", False),
    ],
)
def test_a_clear_text_endpoint_off_this_machine_is_refused_for_both_apis(url: str, refused: bool) -> None:
    from lattigo_fleet.client import InsecureEndpoint, LattigoClient, ThingSpaceError
    from lattigo_fleet.client.thingspace import ThingSpaceClient

    lattigo = LattigoClient(url, KEY, SECRET, max_retries=0, timeout=0.5)
    ts = ThingSpaceClient(url, "k", "s", "u", "p", max_retries=0, timeout=0.5)
    for call in (lambda: lattigo.users(), lambda: ts.api_token()):
        with pytest.raises((InsecureEndpoint, ThingSpaceError, Exception)) as info:
            call()
        assert isinstance(info.value, InsecureEndpoint) == refused, info.value
        if refused:
            assert "https" in str(info.value) and SECRET not in str(info.value)


OTHER_ICCID = "89014103211118510799"
FOREIGN_ROWS = [
    {"processed": [{"iccid": OTHER_ICCID, "imei": IMEI}], "unprocessed": []},
    {"processed": [{"iccid": ICCID, "imei": IMEI}, {"iccid": OTHER_ICCID}], "unprocessed": []},
    {"processed": [], "unprocessed": [{"device_index": 7, "error": "{}", "input": {"iccid": OTHER_ICCID}}]},
]


@pytest.mark.parametrize("body", FOREIGN_ROWS, ids=["other", "ours and another", "refusal of another"])
def test_an_activation_answer_about_sims_not_in_the_request_is_unexpected(
    hostile: Hostile, body: dict[str, Any]
) -> None:
    hostile.answer = lambda h, seen: reply(h, 422 if body["unprocessed"] else 200, body)
    with pytest.raises(UnexpectedAnswer) as info:
        client(hostile).activate([ActivationRow(ICCID, IMEI)], "plan")
    assert "not in the request" in str(info.value) and OTHER_ICCID in str(info.value)


def test_a_slow_endless_listing_stops_at_the_listing_budget(hostile: Hostile) -> None:
    """Without totals, pages that keep coming (slowly) end at the listing's wall-clock budget, not 10,000
    pages later. The server's answers advance the test's clock by 5 s each."""
    clock = Clock()

    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        clock.now += 5.0
        page = int(seen.query["page"])
        reply(h, 200, [f"device-{page}"], {"X-Page": str(page), "X-Next-Page": str(page + 1)})

    hostile.answer = answer
    with pytest.raises(DeadlineExceeded) as info:
        list(client(hostile, clock=clock, listing_timeout=60.0).devices(details=False))
    assert info.value.bound == "listing_time" and len(hostile.seen) <= 14, len(hostile.seen)


def test_a_trickling_thingspace_answer_ends_at_the_response_deadline(hostile: Hostile) -> None:
    from lattigo_fleet.client import ThingSpaceError
    from lattigo_fleet.client.thingspace import ThingSpaceClient

    hostile.answer = trickle(10_000, 0.02)
    ts = ThingSpaceClient(hostile.base_url, "k", "s", "u", "p", max_retries=0, timeout=5, response_timeout=0.5)
    with pytest.raises(ThingSpaceError) as info:
        ts.api_token()
    assert "response_time" in str(info.value)


@pytest.mark.parametrize("announced", [True, False])
def test_a_huge_thingspace_answer_is_refused_past_the_body_cap(hostile: Hostile, announced: bool) -> None:
    from lattigo_fleet.client import ThingSpaceError
    from lattigo_fleet.client.thingspace import ThingSpaceClient

    big = b"[" + b" " * (2 << 20) + b"]"

    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if announced:
            h.send_header("Content-Length", str(len(big)))
        h.end_headers()
        h.wfile.write(big)
        h.close_connection = True

    hostile.answer = answer
    ts = ThingSpaceClient(hostile.base_url, "k", "s", "u", "p", max_retries=0, timeout=5, max_body_bytes=1 << 20)
    with pytest.raises(ThingSpaceError) as info:
        ts.api_token()
    assert "body_size" in str(info.value)


def test_a_server_that_never_answers_fails_once_within_the_response_bound(hostile: Hostile) -> None:
    """Each attempt waits `timeout` for an answer that never comes; the retries of such a call stop once
    another wait would end past the response bound: one DeadlineExceeded, not five timeouts in a row."""

    def answer(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        time.sleep(1.5)  # longer than the client's timeout: no answer reaches it

    hostile.answer = answer
    with pytest.raises(DeadlineExceeded) as info:
        client(hostile, timeout=0.3, response_timeout=1.0, max_retries=5).users()
    assert info.value.bound == "response_time" and "no answer" in str(info.value)
    assert 1 <= len(hostile.seen) <= 4, len(hostile.seen)


def test_a_thingspace_error_that_echoes_the_basic_credentials_is_redacted(hostile: Hostile) -> None:
    import base64

    from lattigo_fleet.client import ThingSpaceError
    from lattigo_fleet.client.thingspace import ThingSpaceClient

    basic = base64.b64encode(b"app-key:app-secret").decode()
    hostile.answer = lambda h, seen: reply(h, 400, {"error": "invalid_client", "error_description": f"Basic {basic}"})
    ts = ThingSpaceClient(hostile.base_url, "app-key", "app-secret", "u", "p", max_retries=0, timeout=5)
    with pytest.raises(ThingSpaceError) as info:
        ts.api_token()
    assert basic not in str(info.value) and "app-secret" not in str(info.value)
