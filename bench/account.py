"""The account every bench seeds and the request floors it is measured against, stated once for all benches.

The floors are what the Lattigo API allows at best: one bulk request per (call, parameters) of at most
CHUNK_SIZE devices (notes: one request per SIM per field), and a read of the account in ceil(N / PER_PAGE)
pages plus the rate plans and the users.
"""

from __future__ import annotations

import math
from collections import Counter

from lattigo_fleet.client.lattigo import CHUNK_SIZE, PER_PAGE

KEY_NAME, API_KEY = "bench-key", "bench-secret"
RATE_PLAN = "ACME Co 5mb Rate Plan"


def iccid(i: int) -> str:
    return f"890100{i:014d}"


def imei(i: int) -> str:
    return f"35{i:013d}"


def floor_writes(known: Counter[tuple[str, str]]) -> int:
    """One bulk request per (call, parameters) of at most CHUNK_SIZE devices; notes one request per SIM per field."""
    return sum(count if call == "note" else math.ceil(count / CHUNK_SIZE) for (call, _), count in known.items())


def floor_reads(declared: int) -> int:
    """The paged snapshot, the rate plans and the users."""
    return math.ceil(declared / PER_PAGE) + 2
