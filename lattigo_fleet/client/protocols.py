"""What the reconciler needs of a Lattigo client, as a ``typing.Protocol``: :class:`LattigoApi`.

``apply.py`` (the batched writes), ``live.py`` (the shared snapshot) and ``account_check.py`` (the checks
against the live account) call only these; :class:`~lattigo_fleet.client.lattigo.LattigoClient` satisfies
it, and so can a test fake, with no inheritance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from lattigo_fleet.client.models import ActivationResult, ActivationRow, BulkResult, LiveDevice

__all__ = ["LattigoApi"]

DateLike = date | datetime | str  # as lattigo.DateLike


class LattigoApi(Protocol):
    """The Lattigo endpoints the reconciler uses: reads of the account, and the writes a plan is made of."""

    @property
    def chunk_size(self) -> int:
        """Devices per bulk request: the reconciler's batches are cut to it."""
        ...

    # --- reads ----------------------------------------------------------------------------------------

    def snapshot(self, state: str | None = None) -> dict[str, LiveDevice]: ...

    def device(self, iccid_or_name: str, id_type: str | None = "iccid") -> LiveDevice: ...

    def rate_plans(self) -> list[dict[str, Any]]: ...

    def users(self) -> list[str]: ...

    def monthly_data_usages(
        self,
        device: str,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        limit: int | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]: ...

    # --- writes ---------------------------------------------------------------------------------------

    def activate(self, rows: Iterable[ActivationRow], rate_plan_name: str) -> ActivationResult: ...

    def change_simstate(self, iccids: Iterable[str], state: str, id_type: str = "iccid") -> BulkResult: ...

    def suspend_no_billing(self, pairs: Iterable[tuple[str, str]]) -> BulkResult: ...

    def change_cost_center(self, device_names: Iterable[str], cost_center: str) -> BulkResult: ...

    def set_usage_limit(
        self,
        device_names: Iterable[str],
        kb_limit: int,
        action: str | None = "suspend",
        usernames: Sequence[str] | None = None,
    ) -> BulkResult: ...

    def remove_usage_limit(self, device_names: Iterable[str]) -> BulkResult: ...

    def set_note(self, device: str, field_name: str, note: str, id_type: str | None = "iccid") -> None: ...
