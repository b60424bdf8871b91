"""The one progress style of the subcommands: a tqdm bar on standard error, shown only on a terminal unless
asked (a CI log gets no carriage returns), and gone when done: what stays is the command's own summary."""

from __future__ import annotations

from typing import TextIO

from tqdm import tqdm


def progress_bar(
    desc: str,
    *,
    stream: TextIO | None = None,
    total: int | None = None,
    unit: str = "SIM",
    show: bool | None = None,
) -> tqdm[None]:
    """A bar counting ``unit`` s on ``stream`` (None: standard error). ``show``: True or False to choose,
    None to show it only when ``stream`` is a terminal."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        disable=None if show is None else not show,
        leave=False,
        dynamic_ncols=True,
    )
