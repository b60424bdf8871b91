"""jsonschema errors → messages in plain English, each placed on the key or value it is about.

:func:`_explain` turns one jsonschema error into ``(path, "key"|"value"|"object", message)`` triples
(several for one ``additionalProperties`` or ``required`` error); ``_simple_message`` words the
one-value cases.  ``_show`` and ``_did_you_mean`` are shared with the account checks.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from lattigo_fleet.fleetfile.model import SIM_ONLY_FIELDS
from lattigo_fleet.fleetfile.positions import YamlPath, _Doc, _fmt_path, _locate
from lattigo_fleet.suggest import did_you_mean

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}
_TYPE_OVERRIDES = {
    "max_changes": 'must be a whole number of SIMs (e.g. 5) or a percentage of the fleet (e.g. "10%")',
}
_TOP_LEVEL_FIELDS = ("version", "defaults", "groups", "sims", "policy")


EXCERPT_CHARS = 40  # a message quotes at most this much of a value: it may be posted in a pull request


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A value as a message quotes it: in double quotes, at most `limit` characters (then "…"), anything not
    printable escaped (control and bidi characters, lone surrogates), so no message carries a file's text or
    moves a terminal's cursor."""
    clipped = text[:limit]
    body = "".join(ch if ch.isprintable() and ch not in '"\\' else json.dumps(ch)[1:-1] for ch in clipped)
    body = body.encode("utf-8", "backslashreplace").decode("utf-8")
    return f'"{body}{"…" if len(text) > limit else ""}"'


def _show(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, int) and len(str(abs(value))) > 30:
        return f"a number of {len(str(abs(value))):,} digits"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return excerpt(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return f"a date ({value.isoformat()})"
    return type(value).__name__


def _source_token(doc: _Doc, path: YamlPath) -> str | None:
    loc = _locate(doc, path, "value")
    if not 0 < loc.line <= len(doc.lines):
        return None
    match = re.match(r"[^\s#,\]\}]+", doc.lines[loc.line - 1][loc.column - 1 :])
    return match.group(0) if match else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    match = did_you_mean(word, choices)
    return f" (did you mean '{match}'?)" if match else ""


def _context(path: YamlPath, kind: str) -> str:
    if not path:
        return "fleet.d files" if kind == "fragment" else "fleet.yaml"
    if path == ("defaults",):
        return "defaults"
    if len(path) == 2 and path[0] == "groups":
        return f"group '{path[1]}'"
    if len(path) == 2 and path[0] == "sims":
        return "a SIM"
    return _fmt_path(path)


def _explain(error: ValidationError, doc: _Doc) -> list[tuple[YamlPath, str, str]]:
    """(path, "key"|"value"|"object", message) for one jsonschema error (see _child_pos)."""
    if error.context:
        best = best_match(error.context)
        if best is not None and best is not error:
            return _explain(best, doc)
    path = tuple(error.absolute_path)
    validator = error.validator
    instance = error.instance
    value = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    in_then = "then" in error.schema_path
    last = path[-1] if path else None

    if validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        out = []
        for key in instance:
            if key in allowed or any(re.search(p, key) for p in patterns):
                continue
            where = _context(path, doc.kind)
            if not path and doc.kind == "fragment" and key in _TOP_LEVEL_FIELDS:
                message = f"'{key}' belongs in fleet.yaml: files in fleet.d may hold only groups and sims"
            elif key in SIM_ONLY_FIELDS and (path == ("defaults",) or (len(path) == 2 and path[0] == "groups")):
                message = f"'{key}' can only be set on a SIM, not in {where}"
            elif last == "notes":
                message = (
                    f"unknown note field '{key}'{_did_you_mean(key, allowed)}: the note fields are {', '.join(allowed)}"
                )
            else:
                extra = " (and x-… extension fields)" if patterns else ""
                hint = _did_you_mean(key, allowed)
                message = f"unknown field '{key}' in {where}{hint}; allowed: {', '.join(allowed)}{extra}"
            out.append(((*path, key), "key", message))
        return out

    if validator == "required":
        out = []
        for key in value:
            if not isinstance(instance, dict) or key in instance:
                continue
            if key == "usernames" and in_then:
                message = "usernames is required when action is 'email': the users to email"
            elif key == "version" and not path:
                message = "missing required field 'version' (write version: 1)"
            else:
                message = f"missing required field '{key}'"
            out.append((path, "object", message))
        return out

    if "propertyNames" in error.schema_path:
        reason = schema.get("patternErrorMessage") if validator == "pattern" else None
        reason = reason or _simple_message(error, doc, path)
        return [((*path, instance), "key", f"invalid group name {_show(instance)}: {reason}")]

    if validator == "uniqueItems" and isinstance(instance, list):
        out, seen = [], []
        for i, item in enumerate(instance):
            if item in seen:
                out.append(((*path, i), "value", f"{_show(item)} is listed twice"))
            else:
                seen.append(item)
        return out or [(path, "value", error.message)]

    if validator == "minItems" and in_then and last == "usernames":
        return [(path, "value", "must name at least one user when action is 'email'")]

    return [(path, "value", _simple_message(error, doc, path))]


def _simple_message(error: ValidationError, doc: _Doc, path: YamlPath) -> str:
    validator, instance, value = error.validator, error.instance, error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    last = path[-1] if path else None
    if validator == "type":
        expected = [value] if isinstance(value, str) else list(value)
        if last in _TYPE_OVERRIDES:
            message = _TYPE_OVERRIDES[last]
        else:
            message = "must be " + " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
        message += f", not {_show(instance)}"
        if "string" in expected and instance is not None and not isinstance(instance, (dict, list)):
            token = _source_token(doc, path) or str(instance)
            message += f': quote it, "{token}"'
            if isinstance(instance, int) and not isinstance(instance, bool):
                message += " (YAML reads unquoted digits as a number, which drops leading zeros)"
        return message
    if validator == "enum":
        hint = _did_you_mean(instance, value) if isinstance(instance, str) else ""
        return f"must be one of {', '.join(map(str, value))}, not {_show(instance)}{hint}"
    if validator == "const":
        if path == ("version",):
            if isinstance(instance, str):
                return f"must be the number {value}, not the string {_show(instance)}"
            shown = _show(instance)
            if shown.startswith("the number "):
                shown = shown[len("the number ") :]
            return f"unsupported version {shown}: this lattigo-fleet reads version {value} only"
        return f"must be {json.dumps(value)}, not {_show(instance)}"
    if validator == "pattern":
        message = schema.get("patternErrorMessage") or f"must match {value}"
        detail = f" ({len(instance)} digits)" if isinstance(instance, str) and instance.isdigit() else ""
        return f"{message}, not {_show(instance)}{detail}"
    if validator == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters long"
    if validator == "maxLength":
        return f"is {len(instance)} characters long; at most {value} are allowed"
    if validator == "minimum":
        return f"must be at least {value}, not {_show(instance)}"
    if validator == "maximum":
        return f"{schema.get('maximumErrorMessage') or f'must be at most {value}'}, not {_show(instance)}"
    if validator == "minItems":
        return f"must have at least {value} item{'s' if value != 1 else ''}"
    return str(error.message)
