"""How the Lattigo API's answers read: pure functions from a decoded body (and its headers) to typed values.

No HTTP here, so each rule can be read and tested alone:

* :func:`page_of`: one page of a list endpoint and its ``X-Page``/``X-Next-Page``/... headers;
* :func:`row_results`: a 200 or 422 ``{processed, unprocessed}`` answer of a row endpoint (activation,
  suspension without billing, IMEI upload) -> accepted and rejected keys;
* :func:`status_map`: a ``{"change_status"|"status": {name: "Success..."|"Error: ..."}}`` answer of a bulk
  device operation -> per-device outcome;
* :func:`error_text` and :func:`unprocessable_body`: what an error answer says, for the typed errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lattigo_fleet.client._http import short_body
from lattigo_fleet.client.errors import UnprocessedRow
from lattigo_fleet.client.models import ActivationResult, BulkResult, Page

__all__ = ["is_success", "page_of", "row_results", "status_map", "error_text", "unprocessable_body"]

#: The keys under which an error answer carries its message, in the order they are looked for.
ERROR_KEYS = ("error", "errors", "message", "errorMessage")


def is_success(message: Any) -> bool:
    """A per-device status of ``Success...`` (anything else, e.g. ``Error: ...``, is a failure)."""
    return isinstance(message, str) and message.strip().lower().startswith("success")


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None or not str(value).strip():
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def page_of(items: list[Any], headers: Mapping[str, str]) -> Page:
    """A page of items with its pagination headers (None where the server sent none)."""
    return Page(
        items=items,
        page=header_int(headers, "X-Page"),
        per_page=header_int(headers, "X-Per-Page"),
        total=header_int(headers, "X-Total"),
        total_pages=header_int(headers, "X-Total-Pages"),
        next_page=header_int(headers, "X-Next-Page"),
        prev_page=header_int(headers, "X-Prev-Page"),
    )


class ForeignRows(ValueError):
    """A row answer about SIMs that were not in the request: nothing in it can be trusted."""

    def __init__(self, iccids: Sequence[str]) -> None:
        self.iccids = list(iccids)
        shown = ", ".join(self.iccids[:5]) + (f" and {len(self.iccids) - 5} more" if len(self.iccids) > 5 else "")
        super().__init__(f"the answer is about SIMs that were not in the request ({shown})")


def row_results(
    status: int,
    data: Any,
    keys: Sequence[str],
    refusal: Callable[[], str],
    scrub: Callable[[str], str],
) -> ActivationResult:
    """200 / 422 ``{processed, unprocessed}`` -> accepted and rejected keys (by ``device_index``).

    ``keys`` name the rows in the order they were sent; an ``unprocessed`` row is matched by its
    ``device_index``, else by the ``iccid``/``imei`` of its ``input``. A 422 without rows refused the whole
    request (e.g. an unknown rate plan): every key carries ``refusal()``, what the server said.
    """
    result = ActivationResult()
    unprocessed_raw = _list(data.get("unprocessed")) if isinstance(data, Mapping) else []
    processed_raw = _list(data.get("processed")) if isinstance(data, Mapping) else []
    foreign = sorted(
        {str(row["iccid"]) for row in processed_raw if isinstance(row, Mapping) and row.get("iccid") is not None}
        - set(keys)
    )
    if foreign:
        raise ForeignRows(foreign)
    if status == 422 and not unprocessed_raw:
        reason = refusal() or "Unprocessable Entity"
        result.rejected = {k: reason for k in keys}
        return result
    for raw in unprocessed_raw:
        row = UnprocessedRow.parse(raw)
        result.unprocessed.append(row)
        key: str | None = None
        if row.device_index is not None and 0 <= row.device_index < len(keys):
            key = keys[row.device_index]
        else:
            for field_name in ("iccid", "imei"):
                value = row.input.get(field_name)
                if value is not None and str(value) in keys:
                    key = str(value)
                    break
        if key is None:
            raise ForeignRows([str(row.input.get("iccid") or row.input.get("imei") or f"row {row.device_index}")])
        result.rejected[key] = scrub(row.message)
    result.accepted = [k for k in keys if k not in result.rejected]
    return result


def status_map(data: Any, chunk: Sequence[str]) -> BulkResult:
    """``{"change_status"|"status": {name: "Success..."|"Error: ..."}}`` -> per-device outcome."""
    statuses: Any = None
    if isinstance(data, Mapping):
        for key in ("change_status", "status"):
            if isinstance(data.get(key), Mapping):
                statuses = data[key]
                break
        if statuses is None and any(n in data for n in chunk):
            statuses = data
    part = BulkResult()
    for name in chunk:
        if not isinstance(statuses, Mapping):
            part.failed[name] = "no per-device status in the response"
            continue
        message = statuses.get(name)
        if is_success(message):
            part.succeeded.append(name)
        elif message is None:
            part.failed[name] = "no status returned for this device"
        else:
            part.failed[name] = str(message)
    return part


def error_text(data: Any) -> str:
    """The message of a decoded error answer (its ``error``/``errors``/... key, else the whole body), short."""
    if isinstance(data, Mapping):
        for key in ERROR_KEYS:
            if key in data and data[key]:
                value = data[key]
                return short_body(value if isinstance(value, str) else str(value))
    return short_body(str(data))


def unprocessable_body(data: Any) -> tuple[list[dict[str, Any]], list[UnprocessedRow]]:
    """The ``processed`` and ``unprocessed`` lists of a decoded 422 answer (empty when it has none)."""
    if not isinstance(data, Mapping):
        return [], []
    processed = [p for p in _list(data.get("processed")) if isinstance(p, Mapping)]
    unprocessed = [UnprocessedRow.parse(u) for u in _list(data.get("unprocessed"))]
    return [dict(p) for p in processed], unprocessed


def _list(value: Any) -> list[Any]:
    """A list from an answer's field, or empty when the field is anything else."""
    return value if isinstance(value, list) else []
