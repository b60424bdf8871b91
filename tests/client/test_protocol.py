"""``LattigoApi`` describes what the reconciler calls, and ``LattigoClient`` satisfies it, signature for signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import lattigo_fleet
from lattigo_fleet.client import LattigoApi, LattigoClient

MEMBERS = sorted(name for name in vars(LattigoApi) if not name.startswith("_") and name not in {"chunk_size"})
RECONCILER = ("apply.py", "live.py", "account_check.py")


def test_protocol_lists_what_the_reconciler_uses() -> None:
    assert MEMBERS == [
        "activate",
        "change_cost_center",
        "change_simstate",
        "device",
        "monthly_data_usages",
        "rate_plans",
        "remove_usage_limit",
        "set_note",
        "set_usage_limit",
        "snapshot",
        "suspend_no_billing",
        "users",
    ]
    assert isinstance(inspect.getattr_static(LattigoApi, "chunk_size"), property)


@pytest.mark.parametrize("module", RECONCILER)
def test_every_client_call_of_the_reconciler_is_in_the_protocol(module: str) -> None:
    source = (Path(lattigo_fleet.__file__).parent / module).read_text()
    called = set(re.findall(r"(?<![\w.])(?:self\.)?_?client\.([a-z_]+)", source))
    assert called, f"{module} calls no client method: the pattern is out of date"
    assert called <= {*MEMBERS, "chunk_size"}


@pytest.mark.parametrize("name", MEMBERS)
def test_client_method_has_the_protocol_signature(name: str) -> None:
    assert inspect.signature(getattr(LattigoClient, name)) == inspect.signature(getattr(LattigoApi, name))


def test_client_has_a_chunk_size() -> None:
    client = LattigoClient("http://127.0.0.1:9", "key", "secret-value", chunk_size=7)
    assert client.chunk_size == 7
