"""OpenAPI description of the emulated API (placeholder, filled in below)."""

from __future__ import annotations

from typing import Any


def openapi_document(server_url: str) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "Lattigo API v2 (emulated)", "version": "2"}, "paths": {}}
