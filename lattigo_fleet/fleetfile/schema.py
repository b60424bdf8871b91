"""The JSON Schema of fleet.yaml: the single source of the field rules.

It ships inside the package, ``lattigo_fleet/fleetfile/fleet.schema.json`` (:data:`SCHEMA_RESOURCE`), so an
installed wheel has it: :func:`fleet_schema` reads it from there, once, with :mod:`importlib.resources`.
``schemas/fleet.schema.json`` at the top of a source checkout (:data:`SCHEMA_PATH`) is the copy users read and
editors point at (``# yaml-language-server: $schema=...``); it is not in the wheel, and the code never opens
it. Edit the package copy and copy it over: tests/packaging/test_wheel.py pins the two byte-equal.
``_validator`` gives the validator for fleet.yaml (``"main"``) or for a fleet.d file (``"fragment"``).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator

SCHEMA_RESOURCE: Final[Traversable] = files("lattigo_fleet.fleetfile").joinpath("fleet.schema.json")
"""The schema the code reads: package data, present in a source checkout and in an installed wheel alike."""

SCHEMA_PATH: Final = Path(__file__).resolve().parent.parent.parent / "schemas" / "fleet.schema.json"
"""The published copy, ``schemas/fleet.schema.json``: exists in a source checkout only (byte-equal to
:data:`SCHEMA_RESOURCE`, a test says so); an installed package has no such file."""


@lru_cache(maxsize=1)
def fleet_schema() -> dict[str, Any]:
    """The JSON Schema of fleet.yaml (:data:`SCHEMA_RESOURCE`)."""
    schema: object = json.loads(SCHEMA_RESOURCE.read_text(encoding="utf-8"))
    if not isinstance(schema, dict):
        raise TypeError(f"{SCHEMA_RESOURCE}: a JSON Schema is an object, not {type(schema).__name__}")
    return schema


@lru_cache(maxsize=1)
def iccid_pattern() -> re.Pattern[str]:
    """What an ICCID is, as the schema says (``$defs.iccid.pattern``): the one statement of it."""
    return re.compile(fleet_schema()["$defs"]["iccid"]["pattern"])


def note_max_length() -> int:
    """The longest note the schema accepts (``$defs.note.maxLength``)."""
    return int(fleet_schema()["$defs"]["note"]["maxLength"])


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with its local `$ref`s replaced by what they point at (the fleet schema has no cycles)."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/$defs/"):
            target = _inline_refs(defs[node["$ref"].rsplit("/", 1)[1]], defs)
            rest = {k: _inline_refs(v, defs) for k, v in node.items() if k != "$ref"}
            return {"allOf": [target], **rest} if rest else target
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@lru_cache(maxsize=2)
def _fast_validator(kind: str) -> Draft202012Validator:
    """For "is it valid?" only (the fast path of load_fleet): the same schema with its references inlined,
    which jsonschema checks in half the time; the errors of an invalid file come from `_validator`."""
    schema = fleet_schema()
    root = {"$ref": "#/$defs/fleetDFile"} if kind == "fragment" else schema
    return Draft202012Validator(_inline_refs(root, schema["$defs"]))


@lru_cache(maxsize=2)
def _validator(kind: str) -> Draft202012Validator:
    schema = fleet_schema()
    if kind == "fragment":
        schema = {"$ref": "#/$defs/fleetDFile", "$defs": schema["$defs"]}
    return Draft202012Validator(schema)
