"""The one did-you-mean of the project: the nearest of the known words to a word that is not one of them.

A leaf module (it imports nothing of the project), so that the spec, the settings, the account checks and
the commands all take their suggestions from here. How close a guess must be depends on what a wrong guess
costs and on how alike the known words are; each such cutoff is named here, once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Names a person chose (SIM names, groups, rate plans, users, a schema's enum values, note fields): a
#: suggestion is only a hint in an error that stops the run anyway, so a loose guess helps more than it costs.
NAME_CUTOFF = 0.6
#: Cost centers: a cost center no SIM uses yet is often intended (a new one), so only a near miss is hinted
#: at, in a warning that must not cry wolf on every new cost center.
COST_CENTER_CUTOFF = 0.75
#: Stack config keys: they share a namespace and long camel-case stems (`lattigo:thingspaceAppKey`,
#: `lattigo:thingspaceAppSecret`), so almost any two look alike; a wrong key suggested is worse than none.
CONFIG_KEY_CUTOFF = 0.85


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = NAME_CUTOFF) -> str | None:
    """The known word the user most likely meant: one equal but for case, else the closest at least `cutoff`
    alike (difflib's ratio), else None."""
    known = list(choices)
    folded = {choice.lower(): choice for choice in reversed(known)}
    if word.lower() in folded:
        return folded[word.lower()]
    close = difflib.get_close_matches(word, known, n=1, cutoff=cutoff)
    return close[0] if close else None
