"""The SIM lifecycle: every state, every event, and what each event does in each state. The one place.

States (``inventory`` is never visible through the API: such a SIM is unknown to ``v2/devices``)::

    inventory ──activate──▶ pending_activation ──(delay | tick)──▶ active
                                                                   │  ▲
                                      suspend (API) / usage limit  ▼  │ restore
                                                                 suspended
    active | suspended ──suspend_no_billing──▶ pending_suspend_no_billing ──(delay | tick)──▶ suspended_no_billing
    suspended_no_billing ──restore──▶ active

A request that is already satisfied (suspend a suspended SIM, restore an active one, ask again for a
suspension without billing that is queued or done) is a no-op that succeeds. Everything not in the table
is refused, with the reason given here.
"""

from __future__ import annotations

from dataclasses import dataclass

INVENTORY = "inventory"
PENDING_ACTIVATION = "pending_activation"
ACTIVE = "active"
SUSPENDED = "suspended"
PENDING_SUSPEND_NO_BILLING = "pending_suspend_no_billing"
SUSPENDED_NO_BILLING = "suspended_no_billing"

#: States a device can have in the API (``state`` field and the ``state`` filter of v2/devices).
API_STATES = (PENDING_ACTIVATION, ACTIVE, SUSPENDED, PENDING_SUSPEND_NO_BILLING, SUSPENDED_NO_BILLING)
ALL_STATES = (INVENTORY, *API_STATES)

# Events
ACTIVATE = "activate"  # activation_request row accepted
ACTIVATION_COMPLETE = "activation_complete"  # queued work finished
SUSPEND = "suspend"  # change_simstate state=suspend
RESTORE = "restore"  # change_simstate state=restore
SUSPEND_NO_BILLING = "suspend_no_billing"  # suspend_no_billing_request row accepted
SUSPEND_NO_BILLING_COMPLETE = "suspend_no_billing_complete"  # queued work finished
USAGE_LIMIT_REACHED = "usage_limit_reached"  # the month's usage reached kb_limit with action suspend

#: Events that complete by themselves after the activation delay (or at once on POST /_emulator/tick).
QUEUED_COMPLETIONS = {
    PENDING_ACTIVATION: ACTIVATION_COMPLETE,
    PENDING_SUSPEND_NO_BILLING: SUSPEND_NO_BILLING_COMPLETE,
}


@dataclass(frozen=True)
class Outcome:
    """The result of an event: a new state (None = unchanged), whether it is a no-op, or a refusal."""

    new_state: str | None = None
    noop: bool = False
    refusal: str | None = None  # a sentence, e.g. "Device is pending activation and cannot be suspended."
    attribute_error: str | None = None  # the same, as a Rails-style attribute message for row errors
    suspended_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def _to(state: str, reason: str | None = None) -> Outcome:
    return Outcome(new_state=state, suspended_reason=reason)


_NOOP = Outcome(noop=True)


def _no(sentence: str, attribute: str) -> Outcome:
    return Outcome(refusal=sentence, attribute_error=attribute)


TRANSITIONS: dict[tuple[str, str], Outcome] = {
    # activation
    (INVENTORY, ACTIVATE): _to(PENDING_ACTIVATION),
    (PENDING_ACTIVATION, ACTIVATE): _no("Device has an activation in progress.", "has an activation in progress"),
    (ACTIVE, ACTIVATE): _no("Device is already active.", "is already activated"),
    (SUSPENDED, ACTIVATE): _no("Device is already activated (suspended).", "is already activated"),
    (PENDING_SUSPEND_NO_BILLING, ACTIVATE): _no("Device is already activated.", "is already activated"),
    (SUSPENDED_NO_BILLING, ACTIVATE): _no("Device is already activated.", "is already activated"),
    (PENDING_ACTIVATION, ACTIVATION_COMPLETE): _to(ACTIVE),
    # suspend
    (ACTIVE, SUSPEND): _to(SUSPENDED, "api"),
    (SUSPENDED, SUSPEND): _NOOP,
    (PENDING_ACTIVATION, SUSPEND): _no(
        "Device is pending activation and cannot be suspended.", "is pending activation and cannot be suspended"
    ),
    (PENDING_SUSPEND_NO_BILLING, SUSPEND): _no(
        "Device has a suspension without billing in progress.", "has a suspension without billing in progress"
    ),
    (SUSPENDED_NO_BILLING, SUSPEND): _no(
        "Device is suspended without billing; restore it before suspending.",
        "is suspended without billing; restore it before suspending",
    ),
    # restore
    (SUSPENDED, RESTORE): _to(ACTIVE),
    (SUSPENDED_NO_BILLING, RESTORE): _to(ACTIVE),
    (ACTIVE, RESTORE): _NOOP,
    (PENDING_ACTIVATION, RESTORE): _no(
        "Device is pending activation and cannot be restored.", "is pending activation and cannot be restored"
    ),
    (PENDING_SUSPEND_NO_BILLING, RESTORE): _no(
        "Device has a suspension without billing in progress; restore it once that completes.",
        "has a suspension without billing in progress",
    ),
    # suspension without billing (queued)
    (ACTIVE, SUSPEND_NO_BILLING): _to(PENDING_SUSPEND_NO_BILLING),
    (SUSPENDED, SUSPEND_NO_BILLING): _to(PENDING_SUSPEND_NO_BILLING),
    (PENDING_SUSPEND_NO_BILLING, SUSPEND_NO_BILLING): _NOOP,
    (SUSPENDED_NO_BILLING, SUSPEND_NO_BILLING): _NOOP,
    (PENDING_ACTIVATION, SUSPEND_NO_BILLING): _no(
        "Device is pending activation and cannot be suspended.", "is pending activation and cannot be suspended"
    ),
    (PENDING_SUSPEND_NO_BILLING, SUSPEND_NO_BILLING_COMPLETE): _to(SUSPENDED_NO_BILLING),
    # usage limit with action suspend
    (ACTIVE, USAGE_LIMIT_REACHED): _to(SUSPENDED, "usage_limit"),
}

_UNKNOWN = _no("Device does not exist.", "does not exist")


def decide(state: str, event: str) -> Outcome:
    """What ``event`` does to a SIM in ``state``."""
    outcome = TRANSITIONS.get((state, event))
    if outcome is not None:
        return outcome
    if state == INVENTORY:
        return _UNKNOWN
    if event in (ACTIVATION_COMPLETE, SUSPEND_NO_BILLING_COMPLETE, USAGE_LIMIT_REACHED):
        return _NOOP  # stale queued work or nothing to enforce: nothing happens
    return _no(f"Device in state {state} does not allow {event}.", f"does not allow {event} in state {state}")
