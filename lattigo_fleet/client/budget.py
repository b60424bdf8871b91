"""The account's request budget, shared by the jobs of one run: the ceiling on each client's request rate.

The Lattigo API rate-limits per account. Stacks of one account run side by side (a CI matrix), and a client
that only slows down once it meets a 429 (:mod:`lattigo_fleet.client.pacing`) lets every job run up to the
account's whole limit, so that twenty jobs at once meet twenty times the 429s. A budget splits the limit
instead: each job's clients send at most ``budget / shares`` requests per second, from their first request.

Where it comes from, read here and only here (:func:`request_budget`, which every :class:`LattigoClient`
calls unless it is given a budget):

* ``LATTIGO_FLEET_REQUESTS_PER_SECOND``: the account's budget, a positive number (requests per second);
  it wins over the stack setting ``lattigo-fleet:requestsPerSecond`` (0, its default: no ceiling), which
  :func:`lattigo_fleet.settings.read_settings` hands here (:func:`use_stack_setting`) when the process reads
  its stack's settings, so that the clients it makes afterwards take it with no caller passing it on;
* ``LATTIGO_FLEET_BUDGET_SHARES``: how many jobs of the run share it (a positive integer, default 1).

A bad value is a :class:`BudgetError` whose one line names the variable (or key) and the value.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "RATE_ENV",
    "SHARES_ENV",
    "STACK_KEY",
    "BudgetError",
    "RequestBudget",
    "parse_rate",
    "parse_shares",
    "request_budget",
    "use_stack_setting",
]

RATE_ENV = "LATTIGO_FLEET_REQUESTS_PER_SECOND"
SHARES_ENV = "LATTIGO_FLEET_BUDGET_SHARES"
STACK_KEY = "lattigo-fleet:requestsPerSecond"


class BudgetError(ValueError):
    """A budget setting that is not a valid number; the message names where it came from and the value."""


@dataclass(frozen=True)
class RequestBudget:
    """The account's budget (requests per second; 0: none) and how many jobs share it."""

    account_rate: float = 0.0
    shares: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.account_rate) and self.account_rate >= 0) or self.shares < 1:
            raise ValueError(f"a budget needs a rate >= 0 and shares >= 1, not {self.account_rate}/{self.shares}")

    @property
    def per_job(self) -> float | None:
        """The ceiling of each job's rate (requests per second), None without a budget."""
        return self.account_rate / self.shares if self.account_rate else None

    def __str__(self) -> str:
        if not self.account_rate:
            return "no request budget"
        share = f", {self.shares} jobs sharing it" if self.shares > 1 else ""
        return f"{self.per_job:g} requests/s (the account's {self.account_rate:g}{share})"


def parse_rate(value: str, name: str, *, zero_is_none: bool = False) -> float:
    """A rate of requests per second: a finite number > 0 (or 0 too, for a setting whose 0 means none)."""
    text = str(value).strip()
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    what = (
        "a number of requests per second, 0 or more (0: no ceiling)"
        if zero_is_none
        else "a positive number of requests per second"
    )
    if not math.isfinite(rate) or rate < 0 or (rate == 0 and not zero_is_none):
        raise BudgetError(f"{name} must be {what}, not {value!r}")
    return rate


def parse_shares(value: str, name: str = SHARES_ENV) -> int:
    """How many jobs share the budget: a whole number >= 1."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise BudgetError(f"{name} must be a whole number of jobs >= 1, not {value!r}")
    return int(text)


_lock = threading.Lock()
_stack_rate = 0.0  # the stack setting of the stack this process last read the settings of


def use_stack_setting(rate: float) -> None:
    """The stack's ``lattigo-fleet:requestsPerSecond`` (0: none), for the clients this process makes from now
    on. :func:`lattigo_fleet.settings.read_settings` calls it: one process serves one stack (the program, the
    provider, a command), and no caller has to remember to pass it."""
    global _stack_rate
    if not (math.isfinite(rate) and rate >= 0):
        raise BudgetError(f"{STACK_KEY} must be a number of requests per second, 0 or more, not {rate!r}")
    with _lock:
        _stack_rate = float(rate)


def request_budget(env: Mapping[str, str] | None = None, stack_rate: float | None = None) -> RequestBudget:
    """The budget of this job: ``LATTIGO_FLEET_REQUESTS_PER_SECOND`` (``env``, default the process's), else
    ``stack_rate`` (default: the stack setting this process read), shared by ``LATTIGO_FLEET_BUDGET_SHARES``
    jobs. An empty variable is an unset one (one of spaces is a bad value). Raises :class:`BudgetError`."""
    env = os.environ if env is None else env
    raw_rate, raw_shares = env.get(RATE_ENV, ""), env.get(SHARES_ENV, "")
    if raw_rate:
        rate = parse_rate(raw_rate, RATE_ENV)
    elif stack_rate is not None:
        rate = stack_rate
    else:
        with _lock:
            rate = _stack_rate
    return RequestBudget(rate, parse_shares(raw_shares) if raw_shares else 1)
