"""Request parameters: query string, JSON bodies and Rack-style form bodies (``device_names[]=…``).

The documents send GET parameters in the query string and everything else as JSON or as form fields
(the older edition's curl ``-d 'device_names[]=123'`` examples). Both are parsed into the same nested
structure, so handlers never care which encoding arrived.
"""

from __future__ import annotations

import json
import re
from typing import Any, overload
from urllib.parse import parse_qsl

from emulator.errors import BadRequest

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def parse_nested_query(text: str) -> dict[str, Any]:
    """Rack's nested parameter rules: ``a[]=1&a[]=2``, ``h[k]=v``, ``rows[][iccid]=…&rows[][imei]=…``."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        _assign(result, key, value)
    return result


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [key]
    parts = [head]
    parts.extend(_KEY_PART.findall("[" + rest))
    return parts


def _assign(target: dict[str, Any], key: str, value: str) -> None:
    parts = _split_key(key)
    if not parts[0]:
        return
    _assign_parts(target, parts, value)


def _assign_parts(container: dict[str, Any], parts: list[str], value: Any) -> None:
    name, rest = parts[0], parts[1:]
    if not rest:
        container[name] = value
        return
    if rest[0] == "":
        lst = container.get(name)
        if not isinstance(lst, list):
            lst = []
            container[name] = lst
        after = rest[1:]
        if not after:
            lst.append(value)
            return
        # rows[][k]=v: start a new hash when the last one already has k (Rack's rule)
        child_key = after[0]
        if lst and isinstance(lst[-1], dict) and not _has_path(lst[-1], after):
            child = lst[-1]
        else:
            child = {}
            lst.append(child)
        _assign_parts(child, [child_key, *after[1:]], value)
        return
    existing = container.get(name)
    child = existing if isinstance(existing, dict) else {}
    if child is not existing:
        container[name] = child
    _assign_parts(child, rest, value)


def _has_path(d: dict[str, Any], parts: list[str]) -> bool:
    key = parts[0]
    if key not in d:
        return False
    if len(parts) == 1:
        return True
    nxt = d[key]
    if parts[1] == "":
        return False
    return isinstance(nxt, dict) and _has_path(nxt, parts[1:])


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """The body as JSON (when declared or when it looks like JSON) or as a nested form; None when empty."""
    if not raw or not raw.strip():
        return None
    ctype = (content_type or "").split(";")[0].strip().lower()
    text = raw.decode("utf-8", errors="replace")
    looks_json = text.lstrip()[:1] in ("{", "[")
    if ctype == "application/json" or ctype.endswith("+json") or (looks_json and "=" not in text[:1]):
        try:
            return json.loads(text)
        except ValueError as exc:
            if ctype == "application/json" or ctype.endswith("+json"):
                raise BadRequest("the request body is not valid JSON") from exc
    return parse_nested_query(text)


def merge_params(query: dict[str, Any], body: Any) -> dict[str, Any]:
    params = dict(query)
    if isinstance(body, dict):
        params.update(body)
    elif body is not None:
        raise BadRequest("the request body must be a JSON object or form fields")
    return params


# ---- typed getters -------------------------------------------------------------------------------

TRUE_WORDS = {"true", "t", "1", "yes", "y", "on"}
FALSE_WORDS = {"false", "f", "0", "no", "n", "off", ""}


def get_bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise BadRequest(f"{name} is invalid")


@overload
def get_int(
    params: dict[str, Any], name: str, default: int, minimum: int | None = None, maximum: int | None = None
) -> int: ...


@overload
def get_int(
    params: dict[str, Any],
    name: str,
    default: None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None: ...


def get_int(
    params: dict[str, Any],
    name: str,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise BadRequest(f"{name} is invalid")
    try:
        number = int(value) if not isinstance(value, float) else _exact_int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{name} is invalid") from exc
    if minimum is not None and number < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise BadRequest(f"{name} must be at most {maximum}")
    return number


def _exact_int(value: float) -> int:
    if not value.is_integer():
        raise ValueError("not an integer")
    return int(value)


def get_str(params: dict[str, Any], name: str, required: bool = False, allow_empty: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is missing")
        return None
    if isinstance(value, (dict, list)):
        raise BadRequest(f"{name} is invalid")
    text = str(value) if not isinstance(value, bool) else str(value).lower()
    if required and not allow_empty and not text.strip():
        raise BadRequest(f"{name} is empty")
    return text


def get_str_list(params: dict[str, Any], name: str, required: bool = False) -> list[str]:
    """An array parameter: JSON array, ``name[]=`` fields, or one string (comma-separated tolerated)."""
    value = params.get(name)
    if value is None and name + "[]" in params:
        value = params[name + "[]"]
    if value is None or value == "" or value == []:
        if required:
            raise BadRequest(f"{name} is missing")
        return []
    if isinstance(value, dict):
        # form fields like device_names[0]=…&device_names[1]=…
        value = [value[k] for k in sorted(value, key=lambda k: (len(k), k))]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [part.strip() for part in str(value).split(",") if part.strip()]
    if not isinstance(value, list):
        raise BadRequest(f"{name} is invalid")
    out: list[str] = []
    for item in value:
        if isinstance(item, (dict, list)) or item is None or isinstance(item, bool):
            raise BadRequest(f"{name} is invalid")
        text = str(item).strip()
        if text:
            out.append(text)
    if required and not out:
        raise BadRequest(f"{name} is missing")
    return out


def get_dict_list(params: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = params.get(name)
    if value is None or value == "" or value == []:
        raise BadRequest(f"{name} is missing")
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value, key=lambda k: (len(k), k))]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadRequest(f"{name} is invalid")
    return value
