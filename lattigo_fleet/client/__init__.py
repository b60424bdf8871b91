"""API clients: the only code in the project that speaks HTTP to Lattigo and to ThingSpace.

from lattigo_fleet.client import LattigoClient, ActivationRow, NotFound

client = LattigoClient(base_url, key_name, api_key, audit_log="apply.jsonl")
for device in client.devices(state="active"):   # every page, following the pagination headers
    ...
snap = client.snapshot()                          # {iccid: device} in ceil(N / per_page) requests
result = client.activate([ActivationRow("8901...", "35...")], "ACME 5MB")
result.accepted, result.rejected                  # a partial 422 is not an exception

Inside: ``lattigo.py`` is the surface (one method per endpoint), ``transport.py`` the wire under it (session,
retries, typed errors, paging, the audit record of every mutating call), ``replies.py`` how the answers
read, ``_http.py`` the retry policy, request counts and audit log shared with ``thingspace.py``;
``protocols.py`` holds :class:`LattigoApi`, what the reconciler needs of a client; ``shapes.py`` the
documented shape of every answer (JSON Schema, checked at the edge); ``pacing.py`` the adaptive token bucket
that slows a client down to the rate the server allows, under the ceiling of ``budget.py``: the account's
request budget, shared by the jobs of one run.

Every call is bounded (:class:`Bounds`, options of :class:`LattigoClient`): pages of a listing, the total
time spent waiting to retry, the time and size of each answer; hitting one raises :class:`DeadlineExceeded`
naming it. A 2xx answer of the wrong shape is an :class:`UnexpectedAnswer`, never a success.
"""

from lattigo_fleet.client._http import RequestStats
from lattigo_fleet.client.budget import BudgetError, RequestBudget, request_budget
from lattigo_fleet.client.errors import (
    AuditLogError,
    AuthenticationError,
    BadRequest,
    DeadlineExceeded,
    InsecureEndpoint,
    LattigoConnectionError,
    LattigoError,
    NotFound,
    RateLimitBudgetExceeded,
    RateLimited,
    ServerError,
    ThingSpaceAuthError,
    ThingSpaceError,
    ThingSpaceLoginLocked,
    ThingSpaceSessionExpired,
    UnexpectedAnswer,
    Unprocessable,
    UnprocessedRow,
    UnsafeRedirect,
)
from lattigo_fleet.client.lattigo import SIM_STATES, LattigoClient
from lattigo_fleet.client.models import ActivationResult, ActivationRow, BulkResult, Page
from lattigo_fleet.client.protocols import LattigoApi
from lattigo_fleet.client.thingspace import DailyUsage, ThingSpaceClient, UsageRecord
from lattigo_fleet.client.transport import Bounds

__all__ = [
    "LattigoClient",
    "LattigoApi",
    "ThingSpaceClient",
    "ActivationRow",
    "ActivationResult",
    "BulkResult",
    "Page",
    "UsageRecord",
    "DailyUsage",
    "RequestStats",
    "RequestBudget",
    "BudgetError",
    "request_budget",
    "Bounds",
    "SIM_STATES",
    "LattigoError",
    "LattigoConnectionError",
    "AuthenticationError",
    "NotFound",
    "BadRequest",
    "RateLimited",
    "Unprocessable",
    "UnprocessedRow",
    "ServerError",
    "DeadlineExceeded",
    "RateLimitBudgetExceeded",
    "UnexpectedAnswer",
    "UnsafeRedirect",
    "ThingSpaceError",
    "InsecureEndpoint",
    "AuditLogError",
    "ThingSpaceAuthError",
    "ThingSpaceSessionExpired",
    "ThingSpaceLoginLocked",
]
