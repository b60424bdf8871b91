"""The one text table of the subcommands (devices, usage): columns padded to their widest cell, two spaces
apart, numbers aligned right; each command says how it writes a cell (devices clip long ones)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    right: Sequence[int] = (),
    indent: str = "  ",
    cell: Callable[[Any], str] = str,
) -> list[str]:
    """The table's lines (headers first, trailing spaces dropped): each row's values written by ``cell``, the
    columns in ``right`` aligned right, every line starting with ``indent``."""
    lines = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return [
        indent
        + "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
