"""ThingSpace's credentials: OAuth2 API tokens, VZ-M2M sessions, and the lock-out after failed logins.

Kept in memory (not in the database), under the store's lock, timed by the emulated clock. Both token
kinds are issued to the emulator's key pairs (:class:`~emulator.accounts.KeyRing`). No HTTP here.
"""

from __future__ import annotations

import secrets
from typing import Any

from emulator.accounts import KeyRing
from emulator.errors import Forbidden, Unauthorized
from emulator.store import Store

API_TOKEN_LIFETIME = 3600  # seconds, from issue
SESSION_IDLE_LIFETIME = 20 * 60  # seconds without use
MAX_FAILED_LOGINS = 5


class ThingSpaceTokens:
    """API tokens (one per app key, an hour each) and sessions (expire after 20 idle minutes)."""

    def __init__(self, store: Store, keys: KeyRing) -> None:
        self.store = store
        self.keys = keys
        self.reset()

    def reset(self) -> None:
        """Forget every token, session and failed login."""
        self._tokens: dict[str, dict[str, Any]] = {}
        self._token_by_app: dict[str, str] = {}
        self._sessions: dict[str, dict[str, Any]] = {}
        self._failed: dict[str, int] = {}
        self._locked: set[str] = set()

    # ---- API tokens -----------------------------------------------------------------------------

    def issue_token(self, app_key: str | None, app_secret: str | None) -> tuple[str, int]:
        """OAuth2 client credentials: the same token again within its hour."""
        with self.store.lock:
            account = self.keys.authenticate(app_key, app_secret)
            now = self.store.clock.timestamp()
            token = self._token_by_app.get(app_key or "")
            if token is not None and self._tokens[token]["expires"] > now:
                return token, int(self._tokens[token]["expires"] - now)
            token = secrets.token_urlsafe(24)
            self._tokens[token] = {"app_key": app_key, "account": account, "expires": now + API_TOKEN_LIFETIME}
            self._token_by_app[app_key or ""] = token
            return token, API_TOKEN_LIFETIME

    def token_account(self, token: str | None) -> tuple[int, str]:
        """(account, app key) of a valid bearer token, or Unauthorized."""
        with self.store.lock:
            entry = self._tokens.get(token or "")
            if entry is None:
                raise Unauthorized("Invalid API access token")
            if entry["expires"] <= self.store.clock.timestamp():
                raise Unauthorized("API access token has expired")
            return entry["account"], entry["app_key"]

    def app_key_of(self, token: str | None) -> str | None:
        with self.store.lock:
            entry = self._tokens.get(token or "")
            return None if entry is None else entry["app_key"]

    def expire_tokens(self) -> int:
        with self.store.lock:
            for entry in self._tokens.values():
                entry["expires"] = float("-inf")
            return len(self._tokens)

    # ---- sessions -------------------------------------------------------------------------------

    def login(self, username: str | None, password: str | None) -> str:
        with self.store.lock:
            user = username or ""
            if user in self._locked:
                raise Forbidden(
                    "The contact record is locked after 5 consecutive failed logins; contact support to unlock it"
                )
            try:
                account = self.keys.authenticate(username, password)
            except Unauthorized:
                count = self._failed.get(user, 0) + 1
                self._failed[user] = count
                if count >= MAX_FAILED_LOGINS:
                    self._locked.add(user)
                raise Unauthorized(
                    f"Invalid username or password ({count} consecutive failed login{'s' if count != 1 else ''})"
                ) from None
            self._failed.pop(user, None)
            token = secrets.token_urlsafe(24)
            self._sessions[token] = {"account": account, "username": user, "last_used": self.store.clock.timestamp()}
            return token

    def logout(self, session_token: str) -> None:
        """End a session; an unknown (or already ended) session token is Unauthorized, as on every other call."""
        with self.store.lock:
            if self._sessions.pop(session_token, None) is None:
                raise Unauthorized("Invalid VZ-M2M session token")

    def session_account(self, session_token: str | None) -> int:
        with self.store.lock:
            entry = self._sessions.get(session_token or "")
            now = self.store.clock.timestamp()
            if entry is None:
                raise Unauthorized("Invalid VZ-M2M session token")
            if now - entry["last_used"] > SESSION_IDLE_LIFETIME:
                raise Unauthorized("VZ-M2M session token has expired")
            entry["last_used"] = now
            return int(entry["account"])

    def expire_sessions(self) -> int:
        with self.store.lock:
            for entry in self._sessions.values():
                entry["last_used"] = float("-inf")
            return len(self._sessions)

    def unlock(self) -> None:
        with self.store.lock:
            self._failed.clear()
            self._locked.clear()
