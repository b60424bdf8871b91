"""schemas/fleet.schema.json: a valid draft 2020-12 schema, documented for editors, in step with the
Python types, and accepting the sample fleet as it stands in the files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from lattigo_fleet.fleetfile import SCHEMA_PATH, SHARED_FIELDS, SIM_ONLY_FIELDS, DesiredSim, fleet_schema

FIXTURES = Path(__file__).parent / "fixtures"


def test_schema_is_valid_draft_2020_12() -> None:
    schema = fleet_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert SCHEMA_PATH.name == "fleet.schema.json" and SCHEMA_PATH.parent.name == "schemas"


def test_every_field_is_documented_for_editors() -> None:
    schema = fleet_schema()
    undocumented: list[str] = []

    def walk(node: dict[str, Any], where: str) -> None:
        for name, sub in node.get("properties", {}).items():
            target = sub
            if "$ref" in sub and not ({"title", "description"} & set(sub)):
                target = schema["$defs"][sub["$ref"].rsplit("/", 1)[1]]
            if not ({"title", "description"} & set(target)):
                undocumented.append(f"{where}.{name}")
            walk(target, f"{where}.{name}")

    walk(schema, "fleet.yaml")
    for name, sub in schema["$defs"].items():
        walk(sub, name)
    assert undocumented == []


def test_schema_fields_match_the_python_types() -> None:
    defs = fleet_schema()["$defs"]
    sim_fields = set(defs["sim"]["properties"])
    assert sim_fields == {f.name for f in dataclasses.fields(DesiredSim)}
    assert sim_fields == set(SHARED_FIELDS) | set(SIM_ONLY_FIELDS)
    assert set(defs["settings"]["properties"]) == set(SHARED_FIELDS)
    assert set(defs["notes"]["properties"]) == {"note", "note1", "note2", "note3"}


def test_schema_enums_are_the_python_constants() -> None:
    """The schema is the source of the field rules; the Python names for its enums must say the same."""
    from lattigo_fleet.fleetfile import IGNORABLE_FIELDS, NOTE_FIELDS, ON_REMOVE_CHOICES, STATES, USAGE_ACTIONS

    defs = fleet_schema()["$defs"]
    assert tuple(defs["state"]["enum"]) == STATES
    assert tuple(defs["notes"]["properties"]) == NOTE_FIELDS
    assert tuple(defs["ignore_changes"]["items"]["enum"]) == IGNORABLE_FIELDS
    assert tuple(defs["usage_limit"]["properties"]["action"]["enum"]) == USAGE_ACTIONS
    assert tuple(defs["policy"]["properties"]["on_remove"]["enum"]) == ON_REMOVE_CHOICES


def test_sample_fleet_is_valid_against_the_schema_itself() -> None:
    """What an editor would check: fleet.yaml against the schema, fleet.d files against #/$defs/fleetDFile."""
    schema = fleet_schema()
    yaml = YAML(typ="safe", pure=True)
    main = yaml.load((FIXTURES / "ok" / "fleet.yaml").read_text(encoding="utf-8"))
    assert list(Draft202012Validator(schema).iter_errors(main)) == []
    fragment = Draft202012Validator({"$ref": "#/$defs/fleetDFile", "$defs": schema["$defs"]})
    for path in sorted((FIXTURES / "ok" / "fleet.d").glob("*.yaml")):
        assert list(fragment.iter_errors(yaml.load(path.read_text(encoding="utf-8")))) == [], path
