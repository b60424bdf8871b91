"""Where things are written in a YAML file, so that every issue carries file:line:column.

``_Doc`` is one file as read (its lines, its ruamel tree and the plain data made from it); ``_yaml`` is
the round-trip parser, chosen because it keeps every node's position; ``_duplicate_keys`` finds every
repeated key (which the parser reports one at a time); ``_locate`` and ``_locate_key`` turn a field
path into a :class:`~lattigo_fleet.spec.model.Location`, following anchors and merge keys to where a
value is literally written; ``_fmt_path`` writes a field path as ``sims[3].imei``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, merge_attrib
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from lattigo_fleet.spec.model import Location


@dataclass
class _Doc:
    file: str
    kind: str  # "main" | "fragment"
    lines: list[str]
    root: Any = None
    data: Any = None


def _yaml(allow_duplicate_keys: bool = False) -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = allow_duplicate_keys
    return yaml


def _duplicate_keys(text: str) -> list[tuple[tuple, tuple[int, int], tuple[int, int]]]:
    """Every repeated key of every mapping: (path, its position, the first one's), 0-based."""
    try:
        root = _yaml().compose(text)
    except YAMLError:
        return []
    found = []
    visited: set[int] = set()

    def walk(node: Any, path: tuple) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[str, tuple[int, int]] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, ScalarNode) else None
                where = (key_node.start_mark.line, key_node.start_mark.column)
                if key is not None and key != "<<":
                    if key in first:
                        found.append(((*path, key), where, first[key]))
                        continue
                    first[key] = where
                walk(value_node, (*path, key))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    walk(root, ())
    return found


# --------------------------------------------------------------------------------------------------
# Positions in the ruamel tree


def _owner(mapping: CommentedMap, key: Any) -> CommentedMap | None:
    """The mapping that literally holds ``key``: ``mapping`` itself, or one merged into it with ``<<``."""
    if key in mapping.lc.data:
        return mapping
    for merged in getattr(mapping, merge_attrib, None) or ():
        if isinstance(merged, CommentedMap) and key in merged:
            return _owner(merged, key)
    return None


def _node_pos(node: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return lc.line, lc.col


def _child_pos(container: Any, key: Any, mode: str) -> tuple[int, int] | None:
    """Position of ``container[key]``: mode "key" (the key), "value" (the value), or "object" (the key
    of a mapping written in place, but the anchor of one that is an alias: fix it where it is written).
    An empty (null) value is placed at its key: ruamel would place it on the next token."""
    try:
        if isinstance(container, CommentedSeq):
            return tuple(container.lc.item(key))  # type: ignore[return-value]
        if isinstance(container, CommentedMap):
            owner = _owner(container, key)
            if owner is None:
                return None
            key_pos = tuple(owner.lc.key(key))
            value_pos = tuple(owner.lc.value(key))
            if mode == "key" or (owner[key] is None and value_pos[0] != key_pos[0]):
                return key_pos  # type: ignore[return-value]
            if mode == "object" and value_pos >= key_pos:
                return key_pos  # type: ignore[return-value]
            return value_pos  # type: ignore[return-value]
    except (KeyError, IndexError, TypeError):
        pass
    return None


def _first_content(lines: list[str], file: str) -> Location:
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "%", "---")):
            return Location(file, number, len(line) - len(line.lstrip()) + 1)
    return Location(file, 1, 1)


def _locate(doc: _Doc, path: tuple, mode: str = "value") -> Location:
    """The position of the node at ``path``: of its key (mode "key"), its value ("value") or either
    ("object", see _child_pos), in the mapping that literally holds it (merge keys followed); for list
    items, the item."""
    pos = _node_pos(doc.root)
    if pos is None:
        return _first_content(doc.lines, doc.file)
    node = doc.root
    for i, key in enumerate(path):
        last = i == len(path) - 1
        child = _child_pos(node, key, mode if last else "value")
        if child is None:
            break
        pos = child
        if last:
            break
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    return Location(doc.file, pos[0] + 1, pos[1] + 1)


def _locate_key(doc: _Doc, mapping: Any, key: Any) -> Location:
    pos = _child_pos(mapping, key, "key") or _node_pos(mapping) or (0, 0)
    return Location(doc.file, pos[0] + 1, pos[1] + 1)


def _fmt_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out
