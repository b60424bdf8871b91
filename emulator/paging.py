"""The Pagination section: ``page`` (from 1), ``per_page``, ``offset`` and the X-* response headers.

Semantics follow the Kaminari/grape-kaminari conventions the headers come from: ``offset`` is a padding
added before the first page, X-Total counts every record, X-Total-Pages counts pages after the padding,
and X-Next-Page / X-Prev-Page are empty when there is no such page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from emulator.params import get_int

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 1000


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    offset: int = 0

    @property
    def start(self) -> int:
        return self.offset + (self.page - 1) * self.per_page

    def slice(self, items: list[Any]) -> list[Any]:
        return items[self.start : self.start + self.per_page]

    def headers(self, total: int) -> dict[str, str]:
        pages = math.ceil(max(total - self.offset, 0) / self.per_page)
        return {
            "X-Total": str(total),
            "X-Total-Pages": str(pages),
            "X-Page": str(self.page),
            "X-Per-Page": str(self.per_page),
            "X-Next-Page": str(self.page + 1) if self.page < pages else "",
            "X-Prev-Page": str(self.page - 1) if self.page > 1 else "",
            "X-Offset": str(self.offset),
        }


def page_request(params: dict[str, Any]) -> PageRequest:
    page = get_int(params, "page", 1, minimum=1)
    per_page = get_int(params, "per_page", DEFAULT_PER_PAGE, minimum=1, maximum=MAX_PER_PAGE)
    offset = get_int(params, "offset", 0, minimum=0)
    assert page is not None and per_page is not None and offset is not None
    return PageRequest(page=page, per_page=per_page, offset=offset)
