"""A client of the emulator's admin API (``/_emulator/``, emulator/admin.py), for the tests and the benches.

One copy of "how to seed SIMs, read the request log, set faults, move the clock" over HTTP, instead of one
per test folder and bench: they drive an emulator in another process (the demo's, a bench's, a CI job's) the
same way. The admin API takes no credentials; the emulator answers it on loopback only.
"""

from __future__ import annotations

import threading
from typing import Any

import requests

ADMIN_PREFIX = "/_emulator"


class AdminClient:
    """The admin API of the emulator at `base_url`. Thread-safe: one HTTP session per thread."""

    def __init__(self, base_url: str, timeout: float = 300.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One admin request (`path` under /_emulator/); its JSON answer, None for an empty one."""
        url = f"{self.base}{ADMIN_PREFIX}/{path.lstrip('/')}"
        resp = self._session().request(method, url, json=body, params=params or None, timeout=self.timeout)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, {} if body is None else body)

    # --- the account ------------------------------------------------------------------------------------

    def add_sims(self, sims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add SIMs (or change existing ones: same ICCID) to the primary account; the SIMs as stored."""
        added: list[dict[str, Any]] = self.post("sims", {"sims": sims})["sims"]
        return added

    def sims(self, **params: Any) -> dict[str, dict[str, Any]]:
        """Every SIM the emulator holds (the platform's view, any state), by ICCID."""
        return {s["iccid"]: s for s in self.get("sims", **params)["sims"]}

    def record_usage(self, iccid: str, day: str, bytes_used: int, sms: int = 0) -> None:
        self.post("usage", {"iccid": iccid, "date": day, "bytes": bytes_used, "sms": sms})

    def record_usages(self, days: list[dict[str, Any]]) -> int:
        """Many days of usage (``{iccid, date, bytes, sms?, sms_mt?}`` each) in one request, all or none: how
        many were recorded. A day of 100,000 SIMs is one request, not 100,000."""
        recorded: int = self.post("usage", {"usage": days})["recorded"]
        return recorded

    def usage(self, **params: Any) -> list[dict[str, Any]]:
        """The days of usage recorded (``date=``, ``iccid=``, ``account=``), in ``record_usages``' words."""
        days: list[dict[str, Any]] = self.get("usage", **params)["usage"]
        return days

    def reset(self, seed: str = "empty") -> None:
        self.post("reset", {"seed": seed})

    # --- the request log ---------------------------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """Every API request served, oldest first (the emulator does not log its admin requests)."""
        log: list[dict[str, Any]] = self.get("requests")
        return log

    def api_requests(self) -> list[dict[str, Any]]:
        """The API requests served (Lattigo and ThingSpace), not the admin ones."""
        return [r for r in self.requests() if not r["path"].startswith(ADMIN_PREFIX)]

    def mutating(self) -> list[dict[str, Any]]:
        """The API requests that can change the account."""
        return [r for r in self.api_requests() if r["method"] != "GET"]

    def clear_requests(self) -> None:
        self.call("DELETE", "requests")

    # --- behaviour ---------------------------------------------------------------------------------------

    def faults(self, **settings: Any) -> dict[str, Any]:
        """Change fault settings (rate limit, error rate, latency, fail_next, ...); the settings now."""
        now: dict[str, Any] = self.post("faults", settings)
        return now

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def tick(self) -> None:
        """Run the platform's due jobs now (pending activations land, usage is rolled up)."""
        self.post("tick")

    def now(self) -> str:
        """The emulator's clock (ISO 8601, UTC)."""
        return str(self.get("clock")["now"])

    def advance_clock(self, seconds: float) -> None:
        self.post("clock", {"advance_seconds": seconds})
