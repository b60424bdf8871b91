"""The API's words are stated once (lattigo_fleet/vocabulary.py); the copies that must exist are pinned here:
the emulator's (a separate server) and the JSON Schema's (what users read)."""

from __future__ import annotations

import re

from devtools.pulumi_stack import REPO
from emulator import lifecycle
from emulator.sims import NOTE_FIELDS as EMULATOR_NOTE_FIELDS
from lattigo_fleet import vocabulary
from lattigo_fleet.fleetfile import STATES
from lattigo_fleet.fleetfile.schema import fleet_schema, iccid_pattern, note_max_length


def test_the_emulator_speaks_the_same_words() -> None:
    assert lifecycle.API_STATES == vocabulary.SIM_STATES
    assert EMULATOR_NOTE_FIELDS == vocabulary.NOTE_FIELDS


def test_the_schema_declares_the_same_note_fields_and_the_declarable_states() -> None:
    defs = fleet_schema()["$defs"]
    assert tuple(defs["notes"]["properties"]) == vocabulary.NOTE_FIELDS
    assert tuple(defs["state"]["enum"]) == STATES and set(STATES) <= set(vocabulary.SIM_STATES)


def test_an_iccid_and_a_note_are_what_the_schema_says_and_nothing_else_restates_them() -> None:
    assert iccid_pattern().pattern == fleet_schema()["$defs"]["iccid"]["pattern"]
    assert note_max_length() == fleet_schema()["$defs"]["note"]["maxLength"]
    sources = [p for d in ("lattigo_fleet", "providers") for p in (REPO / d).rglob("*.py")]
    for path in sources:
        text = path.read_text()
        assert not re.search(r"\[0-9\]\{1[89],2[02]\}|\\d\{1[89],2[02]\}", text), f"{path}: an ICCID regex of its own"
        if path.name != "vocabulary.py":
            for state in ("pending_suspend_no_billing", "pending_activation"):
                assert f'"{state}"' not in text, f"{path}: restates the live state {state!r}"
