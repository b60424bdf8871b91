"""The JSON Schema of fleet.yaml, ``schemas/fleet.schema.json``: the single source of the field rules.

:func:`fleet_schema` reads it once; ``_validator`` gives the validator for fleet.yaml (``"main"``) or
for a fleet.d file (``"fragment"``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator

SCHEMA_PATH: Final = Path(__file__).resolve().parent.parent.parent / "schemas" / "fleet.schema.json"


@lru_cache(maxsize=1)
def fleet_schema() -> dict[str, Any]:
    """The JSON Schema of fleet.yaml (``schemas/fleet.schema.json``)."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=2)
def _validator(kind: str) -> Draft202012Validator:
    schema = fleet_schema()
    if kind == "fragment":
        schema = {"$ref": "#/$defs/fleetDFile", "$defs": schema["$defs"]}
    return Draft202012Validator(schema)
