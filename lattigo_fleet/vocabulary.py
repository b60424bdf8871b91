"""The Lattigo API's own words, stated once: the live states a SIM is reported in and the note fields.

Everything above the wire (the client, the fleet file's model, the planner, the commands) imports them from
here, and this module imports nothing. The emulator, a separate server, states them again on purpose; a test
(tests/unit/test_vocabulary.py) pins its copy, and the JSON Schema's, to these.
"""

from __future__ import annotations

from typing import Final

# Live states, as `v2/devices` reports them.
PENDING_ACTIVATION: Final = "pending_activation"
ACTIVE: Final = "active"
SUSPENDED: Final = "suspended"
PENDING_SUSPEND_NO_BILLING: Final = "pending_suspend_no_billing"
SUSPENDED_NO_BILLING: Final = "suspended_no_billing"
SIM_STATES: Final = (PENDING_ACTIVATION, ACTIVE, SUSPENDED, PENDING_SUSPEND_NO_BILLING, SUSPENDED_NO_BILLING)
SUSPENDED_NO_BILLING_STATES: Final = frozenset({PENDING_SUSPEND_NO_BILLING, SUSPENDED_NO_BILLING})
OUT_OF_SERVICE_STATES: Final = frozenset({SUSPENDED, SUSPENDED_NO_BILLING})  # settled, and not serving

# The four free-text fields of a device.
NOTE_FIELDS: Final = ("note", "note1", "note2", "note3")
