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


# The mix of a change, per 10 SIMs: 4 move to cost center "finance", 3 to "logistics", 2 get a new note, 1 is
# suspended.
MIX = ("finance",) * 4 + ("logistics",) * 3 + ("note",) * 2 + ("suspend",)


def apply_mix(
    indices: list[int], cost_center: dict[int, str], note: dict[int, str], suspended: set[int]
) -> Counter[tuple[str, str]]:
    """Change these SIMs by the mix (into the three maps of a bench's fleet); the known changes, keyed by
    (call, parameter), for floor_writes."""
    known: Counter[tuple[str, str]] = Counter()
    for j, i in enumerate(indices):
        kind = MIX[j % len(MIX)]
        if kind == "note":
            note[i] = f"unit {i}, moved"
            known[("note", "note")] += 1
        elif kind == "suspend":
            suspended.add(i)
            known[("change_simstate", "suspend")] += 1
        else:
            cost_center[i] = kind
            known[("change_cost_center", kind)] += 1
    return known


def floor_writes(known: Counter[tuple[str, str]]) -> int:
    """One bulk request per (call, parameters) of at most CHUNK_SIZE devices; notes one request per SIM per field."""
    return sum(count if call == "note" else math.ceil(count / CHUNK_SIZE) for (call, _), count in known.items())


def floor_reads(declared: int) -> int:
    """The paged snapshot, the rate plans and the users."""
    return math.ceil(declared / PER_PAGE) + 2
