"""The provider process's one view of the live account: a fleet snapshot shared by every resource.

Refresh and planning read SIMs from here instead of one GET per SIM: the first reader loads the whole fleet
with the client's paged bulk read, and every later reader in the same `pulumi` run shares it. Our own
successful writes are recorded into it, so it stays the truth for the rest of the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Unpack

from lattigo_fleet.client.models import DeviceFields, LiveDevice, live_state, with_fields
from lattigo_fleet.client.protocols import LattigoApi
from lattigo_fleet.vocabulary import PENDING_ACTIVATION, PENDING_SUSPEND_NO_BILLING

PENDING_STATES = (PENDING_ACTIVATION, PENDING_SUSPEND_NO_BILLING)
MONTH_USAGE_CONCURRENCY = 8


def month_bytes(client: LattigoApi, iccids: Iterable[str]) -> dict[str, int | None]:
    """This month's bytes (UTC) of each SIM, from the account's `monthly_data_usages` (None: not readable).
    Asked only for SIMs that their own usage limit may have suspended (planner.limit_suspension_candidate):
    one GET each, a few per run."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    from lattigo_fleet.client import LattigoError

    today = datetime.now(UTC).date()
    month = today.replace(day=1)

    def one(iccid: str) -> tuple[str, int | None]:
        try:
            rows = client.monthly_data_usages(iccid, start_date=month, end_date=today, limit=1)
        except LattigoError:
            return iccid, None
        this_month = [r for r in rows if str(r.get("date_for") or "").startswith(month.isoformat()[:7])]
        try:
            return iccid, sum(int(r.get("bytes_used") or 0) for r in this_month)
        except (TypeError, ValueError):
            return iccid, None

    wanted = list(dict.fromkeys(iccids))
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(MONTH_USAGE_CONCURRENCY, len(wanted))) as pool:
        return dict(pool.map(one, wanted))


# A read of the account made elsewhere in this run (the program's, lattigo_fleet/run_snapshot.py): the SIMs and
# the month usage it read, or None when there is none.
FirstRead = Callable[[], tuple[dict[str, LiveDevice], dict[str, int | None]] | None]


class LiveFleet:
    def __init__(
        self,
        client: LattigoApi,
        *,
        poll_interval: float = 0.25,
        max_poll_interval: float = 5.0,
        first_read: FirstRead | None = None,
    ) -> None:
        self._client = client
        self._first_read = first_read
        self._poll_interval = poll_interval
        self._max_poll_interval = max_poll_interval
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one bulk read at a time; others wait for its result
        self._sims: dict[str, LiveDevice] | None = None
        self._generation = 0
        # Our own writes, numbered. A bulk read that was already under way when a write was recorded may not
        # show it, so writes newer than the read's start are applied again on top of what it returned.
        self._writes: list[tuple[int, str, DeviceFields]] = []
        self._write_seq = 0
        self._month_bytes: dict[str, int | None] = {}
        self._ours: set[tuple[str, str]] = set()  # (ICCID, field) this run wrote

    @property
    def generation(self) -> int:
        """How many reads of the account this snapshot has had (a reader passes it to `reload(if_older_than=)`)."""
        return self._generation

    def written_here(self, iccid: str, field_name: str) -> bool:
        """Whether this run changed this field of this SIM (`state`, `cost_center`, `notes.note1`, ...)."""
        key = field_name.split(".", 1)[1] if field_name.startswith("notes.") else field_name
        with self._lock:
            return (iccid, key) in self._ours

    def month_bytes(self, iccid: str) -> int | None:
        """This month's bytes of one SIM (see `month_bytes`), read once per run."""
        with self._lock:
            if iccid in self._month_bytes:
                return self._month_bytes[iccid]
        value = month_bytes(self._client, [iccid])[iccid]
        with self._lock:
            self._month_bytes[iccid] = value
        return value

    def get(self, iccid: str) -> LiveDevice | None:
        sims = self._loaded()
        with self._lock:
            sim = sims.get(iccid)
            return sim.copy() if sim is not None else None

    def _ensure_loaded(self) -> None:
        if self._sims is None:
            self.reload(if_older_than=0)

    def _loaded(self) -> dict[str, LiveDevice]:
        self._ensure_loaded()
        assert self._sims is not None  # reload() sets it, or raises
        return self._sims

    def reload(self, if_older_than: int | None = None) -> None:
        """Load the fleet again. With `if_older_than=g`, skip it if a load newer than generation g happened
        while we waited: concurrent callers then share one bulk read instead of each making their own."""
        with self._loading:
            if if_older_than is not None and self._generation > if_older_than:
                return
            with self._lock:
                started_at = self._write_seq
            handed = self._first_read() if self._first_read is not None and self._generation == 0 else None
            self._first_read = None
            if handed is not None:
                sims, months = handed
                with self._lock:
                    self._month_bytes.update(months)
            else:
                sims = self._client.snapshot()
            with self._lock:
                for seq, iccid, fields in self._writes:
                    if seq > started_at:
                        sims[iccid] = with_fields(sims.get(iccid), iccid, fields)
                # Writes recorded before this read began are in what the platform returned.
                self._writes = [w for w in self._writes if w[0] > started_at]
                self._sims = sims
                self._generation += 1

    def reload_pending(self, if_older_than: int | None = None) -> None:
        """Read again only what is in flight: the SIMs the platform lists as pending (one filtered list per
        pending state), and each SIM we knew as pending that is no longer listed (one GET each, or one full
        reload if that is cheaper). A poll then costs what is pending, not the whole fleet; a fleet of no more
        pages than there are pending lists is read whole, in fewer requests."""
        from lattigo_fleet.client import NotFound

        if self._sims is None:
            self.reload(if_older_than=if_older_than)
            return
        per_page = getattr(self._client, "per_page", 1000)
        if -(-len(self._sims) // per_page) <= len(PENDING_STATES):  # the whole fleet costs no more requests
            self.reload(if_older_than=if_older_than)
            return
        with self._loading:
            if if_older_than is not None and self._generation > if_older_than:
                return
            listed: dict[str, LiveDevice] = {}
            for state in PENDING_STATES:
                listed.update(self._client.snapshot(state=state))
            with self._lock:
                landed = [i for i, sim in self._sims.items() if sim.get("state") in PENDING_STATES and i not in listed]
            pages = -(-len(self._sims) // per_page)  # of a full reload
            if len(landed) > pages:  # a full reload costs fewer requests than one GET per landed SIM
                fresh = self._client.snapshot()
                updates = {i: fresh.get(i) for i in landed}
            else:
                updates = {}
                for iccid in landed:
                    try:
                        updates[iccid] = self._client.device(iccid)
                    except NotFound:
                        updates[iccid] = None
            with self._lock:
                self._sims.update(listed)
                for iccid, sim in updates.items():
                    if sim is None:
                        self._sims.pop(iccid, None)
                    else:
                        self._sims[iccid] = sim
                self._generation += 1

    def record(self, iccid: str, **fields: Unpack[DeviceFields]) -> None:
        """Remember a change we just made (the platform said Success)."""
        self._ensure_loaded()
        sims = self._loaded()
        with self._lock:
            self._write_seq += 1
            self._writes.append((self._write_seq, iccid, fields))
            self._ours.update((iccid, key) for key in fields)
            sims[iccid] = with_fields(sims.get(iccid), iccid, fields)

    def wait_settled(self, iccids: Iterable[str], timeout: float) -> dict[str, str | None]:
        """Wait until none of `iccids` is in a pending state (or `timeout` passes); return their states.

        Every waiter polls the same shared snapshot, so N SIMs waiting together cost one paged read per poll,
        not N GETs."""
        wanted = list(iccids)
        deadline = time.monotonic() + timeout
        interval = self._poll_interval
        while True:
            states = {i: live_state(self.get(i)) for i in wanted}
            if not any(s in PENDING_STATES or s is None for s in states.values()):
                return states
            if time.monotonic() >= deadline:
                return states
            seen = self._generation
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, self._max_poll_interval)  # activations take seconds to minutes
            self.reload_pending(if_older_than=seen)
