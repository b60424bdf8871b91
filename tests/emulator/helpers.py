"""Helpers for the emulator's contract tests: an HTTP client that speaks both body encodings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import requests

FIXTURES = Path(__file__).parent / "fixtures"
ENCODINGS = ("json", "form")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def form_pairs(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Rack-style form fields: lists as ``name[]``, hashes as ``name[key]``, lists of hashes as ``name[][key]``."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            pairs.extend(form_pairs(item, f"{prefix}[{key}]" if prefix else str(key)))
    elif isinstance(value, list):
        for item in value:
            pairs.extend(form_pairs(item, f"{prefix}[]"))
    elif value is None:
        pass
    else:
        pairs.append((prefix, str(value).lower() if isinstance(value, bool) else str(value)))
    return pairs


class Api:
    """requests against the emulator with Basic auth; ``send`` encodes a body as JSON or as form fields."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None) -> None:
        self.base = base_url
        self.auth = auth
        self.session = requests.Session()
        self.session.auth = auth

    def url(self, path: str) -> str:
        return self.base + (path if path.startswith("/") else "/" + path)

    def get(self, path: str, params: Any = None, **kw: Any) -> requests.Response:
        return self.session.get(self.url(path), params=params, timeout=30, **kw)

    def send(self, method: str, path: str, body: Any = None, encoding: str = "json", **kw: Any) -> requests.Response:
        if encoding == "json":
            return self.session.request(method, self.url(path), json=body, timeout=30, **kw)
        data = body if isinstance(body, list) else form_pairs(body or {})
        return self.session.request(method, self.url(path), data=data, timeout=30, **kw)

    def post(self, path: str, body: Any = None, encoding: str = "json", **kw: Any) -> requests.Response:
        return self.send("POST", path, body, encoding, **kw)

    def put(self, path: str, body: Any = None, encoding: str = "json", **kw: Any) -> requests.Response:
        return self.send("PUT", path, body, encoding, **kw)


def iccid(n: int) -> str:
    return f"8901260{n:013d}"


def imei(n: int) -> str:
    return f"35{n:013d}"


def utc_today() -> date:
    """The emulator's calendar is UTC."""
    return datetime.now(UTC).date()
