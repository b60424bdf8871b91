"""Fuzz run (not a test): hostile answers to every Lattigo client endpoint, counting tracebacks and hangs.

Each case is one answer (status, headers, body) given to one endpoint method through the client's whole
reading path, by the canned transport adapter of ``devtools/canned_client.py`` (no socket, no sleeping).
Answers are random JSON biased towards the keys the readers look for, mutations of valid answers, random
bytes, and a fixed set of known-hostile bodies (deep nesting, huge numbers, NaN, bad encodings, a gzip
header on plain bytes). A case passes when the call returns a well-typed result or raises a
``LattigoError``; anything else is a traceback, and a case that runs past ``--timeout`` seconds (a
``SIGALRM`` interval timer) is a hang. Seeded: the same ``--seed`` replays the same cases.

    .venv/bin/python -m bench.fuzz_client [--cases 10000] [--seed 1] [--timeout 5] [--endpoint NAME ...]

Prints, per endpoint, the cases run and how they ended, then ``tracebacks N, hangs N``; exits 1 if
either is not 0 (the first tracebacks are printed in full).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import signal
import string
import sys
import time
import traceback
import zlib
from collections import Counter
from typing import Any

from devtools.canned_client import ENDPOINTS, HEADERS, ICCIDS, IMEIS, KEYS, NAMES, STATUSES, canned_client
from lattigo_fleet.client import LattigoError

SHOW_TRACEBACKS = 5


class Hang(BaseException):
    """Raised by the interval timer inside a case that ran too long (a BaseException: nothing swallows it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


HOSTILE_BODIES: list[bytes] = [
    b"[" * 1_000_000,
    b'{"a":' * 100_000,
    b"[" * 63 + b"]" * 63,
    b"[" * 70 + b"]" * 70,
    b"1" * 5000,
    b'{"processed": [], "unprocessed": [{"error": "' + b"[" * 5000 + b'"}]}',
    b'{"processed": [], "unprocessed": [{"device_index": 1e400, "error": {"x": NaN}}]}',
    b"NaN",
    b"Infinity",
    b'"\\ud800"',
    b"\xef\xbb\xbf[]",
    b"\xff\xfe[\x00]\x00",
    b"\x00" * 100,
    b"",
    b"   ",
    b"null",
    b"<html><body>502 Bad Gateway</body></html>",
    json.dumps({"change_status": {n: {"nested": ["x"]} for n in NAMES}}).encode(),
    json.dumps({"status": dict.fromkeys(NAMES, None)}).encode(),
    json.dumps([{"iccid": None, "device_name": "x", "state": "active"}]).encode(),
    json.dumps({"error": "internal failure"}).encode(),
]
HOSTILE_HEADERS: list[dict[str, str]] = [
    {"X-Next-Page": "2"},
    {"X-Next-Page": "99999999999999999999999"},
    {"X-Page": "1", "X-Next-Page": "1"},
    {"X-Total-Pages": "-1", "X-Per-Page": "0"},
    {"X-Total": "abc", "X-Per-Page": "-5", "X-Next-Page": "2"},
    {"Retry-After": "100000"},
    {"Retry-After": "nan"},
    {"Retry-After": "inf"},
    {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    {"Location": "http://evil.example/steal"},
    {"Location": "//evil.example/steal"},
    {"Location": "/v2/devices"},
    {"Content-Encoding": "gzip"},
    {"Content-Length": "999999999999"},
]


class Cases:
    """Random answers, biased towards what the readers look for."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def scalar(self) -> Any:
        r = self.rng
        return r.choice(
            [
                None,
                True,
                False,
                r.randint(-(2**70), 2**70),
                r.random() * 10.0 ** r.randint(-5, 300),
                "".join(r.choices(string.printable + "éß漢\u0000", k=r.randint(0, 12))),
                r.choice(["Success", "Error: Device does not exist.", "active", "", *ICCIDS, *NAMES, *IMEIS]),
            ]
        )

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.random()
        if depth > 5 or kind < 0.45:
            return self.scalar()
        if kind < 0.7:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return {self.key(): self.value(depth + 1) for _ in range(r.randint(0, 5))}

    def key(self) -> str:
        r = self.rng
        return r.choice(KEYS) if r.random() < 0.7 else "".join(r.choices(string.ascii_letters, k=r.randint(0, 6)))

    def near_valid(self) -> Any:
        r = self.rng
        device = {"iccid": r.choice(ICCIDS), "device_name": r.choice(NAMES), "state": "active"}
        valid: list[Any] = [
            [dict(device)],
            dict(device),
            {"processed": [{"iccid": ICCIDS[0]}], "unprocessed": [{"device_index": 1, "error": '{"iccid":["bad"]}'}]},
            {"change_status": dict.fromkeys(ICCIDS + NAMES, "Success")},
            {"status": dict.fromkeys(NAMES + IMEIS, "Success: done")},
            [{"name": "plan"}],
            ["ops"],
            {NAMES[0]: "Success"},
            [{"message_id": 1, "event_code": 5}],
        ]
        answer = r.choice(valid)
        for _ in range(r.randint(0, 3)):
            answer = self.mutate(answer)
        return answer

    def mutate(self, value: Any) -> Any:
        r = self.rng
        if isinstance(value, dict) and value and r.random() < 0.6:
            key = r.choice(list(value))
            out = dict(value)
            choice = r.random()
            if choice < 0.4:
                out[key] = self.mutate(out[key])
            elif choice < 0.7:
                del out[key]
            else:
                out[self.key()] = self.value(3)
            return out
        if isinstance(value, list) and value and r.random() < 0.6:
            items = list(value)
            i = r.randrange(len(items))
            items[i] = self.mutate(items[i]) if r.random() < 0.7 else self.value(3)
            return items
        return self.value(3)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        r = self.rng
        status = r.choice(STATUSES)
        headers: dict[str, str] = {}
        if r.random() < 0.3:
            headers.update(r.choice(HOSTILE_HEADERS))
        for name in r.sample(HEADERS, r.randint(0, 2)):
            headers[name] = str(r.randint(-2, 12)) if r.random() < 0.7 else "".join(r.choices("0-9:/ ab", k=4))
        pick = r.random()
        if pick < 0.08:
            body = r.choice(HOSTILE_BODIES)
        elif pick < 0.15:
            body = bytes(r.getrandbits(8) for _ in range(r.randint(0, 64)))
        elif pick < 0.55:
            body = json.dumps(self.near_valid()).encode()
        else:
            body = json.dumps(self.value()).encode()
        if headers.get("Content-Encoding") == "gzip" and r.random() < 0.5:
            body = gzip.compress(body)
        return status, headers, body


def run(endpoint: str, cases: int, seed: int, timeout: float) -> tuple[Counter[str], list[str]]:
    call, well_typed = ENDPOINTS[endpoint]
    gen = Cases(zlib.crc32(f"{seed}:{endpoint}".encode()))
    outcomes: Counter[str] = Counter()
    tracebacks: list[str] = []
    for n in range(cases):
        status, headers, body = gen.answer()
        client = canned_client(status, headers, body)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            result = call(client)
            signal.setitimer(signal.ITIMER_REAL, 0)
            if well_typed(result):
                outcomes["result"] += 1
            else:
                outcomes["traceback"] += 1
                tracebacks.append(f"case {n}: ill-typed result {result!r:.300} for {status} {headers} {body[:200]!r}")
        except Hang:
            outcomes["hang"] += 1
            tracebacks.append(f"case {n}: hang (> {timeout} s) for {status} {headers} {body[:200]!r}")
        except LattigoError as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            outcomes[exc.__class__.__name__] += 1
        except Exception:
            signal.setitimer(signal.ITIMER_REAL, 0)
            outcomes["traceback"] += 1
            tracebacks.append(f"case {n}: {status} {headers} {body[:200]!r}\n{traceback.format_exc()}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            client.close()
    return outcomes, tracebacks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="cases per endpoint (default 10,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a case counts as a hang")
    parser.add_argument("--endpoint", action="append", choices=sorted(ENDPOINTS), help="only these (repeatable)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    total: Counter[str] = Counter()
    shown: list[str] = []
    started = time.monotonic()
    for endpoint in args.endpoint or sorted(ENDPOINTS):
        t0 = time.monotonic()
        outcomes, tracebacks = run(endpoint, args.cases, args.seed, args.timeout)
        total.update(outcomes)
        shown.extend(tracebacks[: max(0, SHOW_TRACEBACKS - len(shown))])
        errors = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k not in ("result", "traceback", "hang"))
        print(
            f"{endpoint:22} {args.cases:>6} cases  results {outcomes['result']:>5}  tracebacks {outcomes['traceback']}"
            f"  hangs {outcomes['hang']}  {time.monotonic() - t0:5.1f} s  [{errors}]",
            flush=True,
        )
    for text in shown:
        print("\n" + text)
    cases = sum(total.values())
    print(
        f"\n{cases} cases in {time.monotonic() - started:.0f} s: results {total['result']}, "
        f"LattigoErrors {cases - total['result'] - total['traceback'] - total['hang']}, "
        f"tracebacks {total['traceback']}, hangs {total['hang']}"
    )
    return 1 if total["traceback"] or total["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
