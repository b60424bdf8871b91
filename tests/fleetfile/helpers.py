"""Small helpers for the spec tests."""

from __future__ import annotations

from lattigo_fleet.fleetfile import DesiredSim, UsageLimit

ICCID = "8901410321111851072"  # 19 digits: iccid(n) appends one more
IMEI = "35693803564380"  # 14 digits: imei(n) appends one more


def iccid(n: int) -> str:
    """A 20-digit ICCID ending in n % 10."""
    return f"{ICCID}{n % 10}"


def imei(n: int) -> str:
    """A 15-digit IMEI ending in n % 10."""
    return f"{IMEI}{n % 10}"


def limit_of(sim: DesiredSim) -> UsageLimit:
    """The SIM's usage limit, which the test expects to be declared (not null, not unmanaged)."""
    assert isinstance(sim.usage_limit, UsageLimit), sim.usage_limit
    return sim.usage_limit
