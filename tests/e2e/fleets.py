"""Helpers for end-to-end tests of the real program: fleet files, ICCIDs, the emulator's admin API."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import requests

PLAN_5MB = "ACME Co 5mb Rate Plan"


def iccid(i: int) -> str:
    return f"8901260{i:013d}"


def imei(i: int) -> str:
    return f"35300{i:010d}"


class Admin:
    def __init__(self, base_url: str) -> None:
        self.base = base_url

    def add_sims(self, sims: list[dict[str, Any]]) -> None:
        requests.post(f"{self.base}/_emulator/sims", json={"sims": sims}, timeout=30).raise_for_status()

    def sims(self) -> dict[str, dict[str, Any]]:
        body: dict[str, Any] = requests.get(f"{self.base}/_emulator/sims", timeout=30).json()
        return {s["iccid"]: s for s in body["sims"]}

    def requests(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = requests.get(f"{self.base}/_emulator/requests", timeout=30).json()
        return log

    def api_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if not r["path"].startswith("/_emulator")]

    def mutating(self) -> list[dict[str, Any]]:
        return [r for r in self.api_requests() if r["method"] != "GET"]

    def clear_log(self) -> None:
        requests.delete(f"{self.base}/_emulator/requests", timeout=30).raise_for_status()

    def faults(self, **settings: Any) -> None:
        requests.post(f"{self.base}/_emulator/faults", json=settings, timeout=30).raise_for_status()


def by_endpoint(reqs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["path"].rsplit("/", 1)[-1] if "/device_operations/" in r["path"] else r["path"] for r in reqs)


def device_names(req: dict[str, Any]) -> list[str]:
    body = req.get("body") or {}
    return list(body.get("device_names") or [])


def small_fleet(states: dict[int, str], policy: str = "") -> str:
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", state: {s}}}\n' for i, s in states.items())
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\n{policy}sims:\n{rows}'


def seed_active(admin: Admin, indices: Iterable[int]) -> None:
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i), "state": "active", "rate_plan": PLAN_5MB} for i in indices])
