"""The blast-radius rule (lattigo_fleet.guard): one rule, as a table, for every path that calls it."""

from __future__ import annotations

import pytest

from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import DesiredSim, Policy
from lattigo_fleet.guard import refusal, suspended_by_fleet, suspended_by_removal


def sim(i: int, state: str = "active", ignore: tuple[str, ...] = ()) -> DesiredSim:
    return DesiredSim(iccid=f"890100000000000000{i:02d}", name=f"truck-{i}", state=state, ignore_changes=ignore)


def live(i: int, state: str) -> tuple[str, LiveDevice]:
    iccid = f"890100000000000000{i:02d}"
    return iccid, {"iccid": iccid, "state": state}


@pytest.mark.parametrize(
    ("live_state", "declared", "ignore", "counts"),
    [
        ("active", "suspended", (), True),
        ("active", "suspended_no_billing", (), True),
        ("pending_activation", "suspended", (), True),
        ("suspended", "suspended_no_billing", (), False),  # already out of service
        (None, "suspended", (), False),  # a SIM not in the account serves nobody yet
        ("suspended", "active", (), False),
        ("active", "active", (), False),
        ("active", "suspended", ("state",), False),  # ignore_changes: state: the declared state is not applied
    ],
)
def test_what_a_declared_suspension_counts(
    live_state: str | None, declared: str, ignore: tuple[str, ...], counts: bool
) -> None:
    account: dict[str, LiveDevice] = dict([live(1, live_state)]) if live_state else {}
    assert (suspended_by_fleet([sim(1, declared, ignore)], account) != []) is counts


@pytest.mark.parametrize(
    ("on_remove", "live_state", "counts"),
    [
        ("suspend", "active", True),
        ("suspend", "pending_activation", True),
        ("suspend", "suspended", False),  # nothing left to take out of service
        ("suspend", None, False),  # gone from the account
        ("retain", "active", False),  # a removal sends nothing
    ],
)
def test_what_a_removal_counts(on_remove: str, live_state: str | None, counts: bool) -> None:
    account: dict[str, LiveDevice] = dict([live(1, live_state)]) if live_state else {}
    removed = suspended_by_removal(Policy(on_remove), [sim(1).iccid], account)
    assert (removed != []) is counts


@pytest.mark.parametrize(
    ("policy", "size", "suspended", "removed", "allow", "refused"),
    [
        (Policy(max_changes=1), 4, 1, 0, False, False),
        (Policy(max_changes=1), 4, 2, 0, False, True),
        (Policy(max_changes=1), 4, 0, 2, False, True),
        (Policy(max_changes=1), 4, 1, 1, False, True),  # suspensions and removals share one budget
        (Policy(max_changes=1), 4, 1, 1, True, False),  # the escape hatch
        (Policy(max_changes_percent=25), 4, 1, 0, False, False),  # 25% of 4 is 1
        (Policy(max_changes_percent=25), 4, 2, 0, False, True),
        (Policy(max_changes_percent=10), 5, 1, 0, False, False),  # a percentage rounds up: 10% of 5 is 1
        (Policy(max_changes=0), 100, 0, 0, False, False),  # nothing out of service: nothing to refuse
        (Policy(max_changes=0), 100, 0, 1, False, True),
    ],
)
def test_the_limit(policy: Policy, size: int, suspended: int, removed: int, allow: bool, refused: bool) -> None:
    message = refusal(
        policy,
        size,
        suspended=[f"s{i}" for i in range(suspended)],
        removed=[f"r{i}" for i in range(removed)],
        allow=allow,
    )
    assert (message is not None) is refused


def test_the_refusal_names_the_sims_and_offers_a_per_run_override() -> None:
    message = refusal(
        Policy(max_changes=1), 10, suspended=["truck-1"], removed=["8901", "8902"], command="pulumi destroy"
    )
    assert message is not None
    assert "take 3 SIMs out of service" in message
    assert "1 suspended by fleet.yaml: truck-1" in message
    assert "2 removed from fleet.yaml with on_remove: suspend: 8901, 8902" in message
    assert "limit of 1" in message
    # The per-run override is the environment variable; the stack setting is said to persist.
    assert "`LATTIGO_ALLOW_LARGE_CHANGES=true pulumi destroy`" in message
    assert "for this run only" in message and "every later run" in message
    assert "pulumi config set" not in message


def test_long_lists_are_cut() -> None:
    message = refusal(Policy(max_changes=0), 100, removed=[f"r{i}" for i in range(25)])
    assert message is not None
    assert "r9, and 15 more" not in message and "r9 and 15 more" in message
