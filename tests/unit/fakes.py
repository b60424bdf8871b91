"""A base for the fakes that stand in for the Lattigo client (lattigo_fleet/client/protocols.py LattigoApi).

:class:`UnusedApi` has every endpoint of the protocol, signature for signature, and each one fails the test if
it is called: a fake overrides the endpoints its test drives and type-checks as a ``LattigoApi``, and a call the
test did not expect is named instead of answered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from lattigo_fleet.client import ActivationResult, ActivationRow, BulkResult, LattigoApi
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.client.protocols import DateLike

__all__ = ["UnusedApi"]


def _unexpected(endpoint: str) -> NoReturn:
    raise AssertionError(f"this test's fake account does not expect a call to {endpoint}()")


class UnusedApi:
    """Every ``LattigoApi`` endpoint, none of them expected: subclass it and override what the test uses."""

    chunk_size: int = 500

    # --- reads ----------------------------------------------------------------------------------------

    def snapshot(self, state: str | None = None) -> dict[str, LiveDevice]:
        _unexpected("snapshot")

    def device(self, iccid_or_name: str, id_type: str | None = "iccid") -> LiveDevice:
        _unexpected("device")

    def rate_plans(self) -> list[dict[str, Any]]:
        _unexpected("rate_plans")

    def users(self) -> list[str]:
        _unexpected("users")

    def monthly_data_usages(
        self,
        device: str,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        limit: int | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]:
        _unexpected("monthly_data_usages")

    # --- writes ---------------------------------------------------------------------------------------

    def activate(self, rows: Iterable[ActivationRow], rate_plan_name: str) -> ActivationResult:
        _unexpected("activate")

    def change_simstate(self, iccids: Iterable[str], state: str, id_type: str = "iccid") -> BulkResult:
        _unexpected("change_simstate")

    def suspend_no_billing(self, pairs: Iterable[tuple[str, str]]) -> BulkResult:
        _unexpected("suspend_no_billing")

    def change_cost_center(self, device_names: Iterable[str], cost_center: str) -> BulkResult:
        _unexpected("change_cost_center")

    def set_usage_limit(
        self,
        device_names: Iterable[str],
        kb_limit: int,
        action: str | None = "suspend",
        usernames: Sequence[str] | None = None,
    ) -> BulkResult:
        _unexpected("set_usage_limit")

    def remove_usage_limit(self, device_names: Iterable[str]) -> BulkResult:
        _unexpected("remove_usage_limit")

    def set_note(self, device: str, field_name: str, note: str, id_type: str | None = "iccid") -> None:
        _unexpected("set_note")


def _as_api(fake: UnusedApi) -> LattigoApi:
    """The fake, as the protocol: mypy checks here that the base (and so every fake built on it) is one."""
    return fake
