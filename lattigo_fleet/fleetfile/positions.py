"""Where things are written in a YAML file, so that every issue carries file:line:column.

``_Doc`` is one file as read (its lines, its ruamel tree and the plain data made from it); ``_yaml`` is
the round-trip parser, chosen because it keeps every node's position, made safe against hostile files
(see "Limits" below); ``_duplicate_keys`` finds every repeated key (which the parser reports one at a
time); ``_locate`` and ``_locate_key`` turn a field path into a
:class:`~lattigo_fleet.fleetfile.model.Location`, following anchors and merge keys to where a value is
literally written; ``_fmt_path`` writes a field path as ``sims[3].imei``.

Limits, enforced while the file is parsed, each refused with the position and field path of the node
that crosses it (``_Refused``), before anything downstream (the schema validator, which formats the
values it rejects) sees the expanded tree:

- :data:`MAX_ALIAS_NODES`: every use of an alias (``*a`` or ``<<: *a``) counts the nodes it repeats
  (the whole subtree, aliases inside it expanded).  The file may repeat at most ``MAX_ALIAS_NODES``
  plus as many nodes as it writes itself.  A 313-byte "billion laughs" file (9 levels of 9 aliases,
  ~400 million nodes) is refused after a few thousand nodes and in milliseconds; honest reuse (every SIM
  of a 100,000-SIM fleet merging a 10-node base) stays well within it, because the allowance grows
  with the file, whose own size is bounded by ``loader.MAX_FILE_BYTES``.  There is no separate cap on
  the number of alias uses: each use repeats at least one node, so the same bound holds them.
- :data:`MAX_DEPTH`: nesting (a fleet file needs 6 levels: root, sims, a SIM, usage_limit, usernames,
  a username); deeper is refused before Python's recursion limit is near, and flow collections
  (``[[[[…``) already in the scanner, whose search for simple keys is quadratic in their depth.
- Merge keys: ruamel records every map that merges an anchor in a list it searches by *equality*,
  comparing whole mappings, so N SIMs merging one base took O(N²) comparisons (3,000 SIMs: two
  minutes).  ``_Referents`` makes that search by identity, in constant time.
- :data:`MAX_INT_DIGITS`: Python's own limit on reading a decimal integer (``int("9" * 5000)``
  raises ValueError); every integer, in any base, must stay under it so that it can also be printed.
- Duplicate anchors (``&a`` defined twice) are recorded (``_GuardedComposer.reused_anchors``) rather
  than warned about, and the loader reports each as an error: an alias means the latest definition
  above it, so a second ``&a`` silently changes what every later ``*a`` gives, SIM fields included.
- ``_bad_characters``: what YAML refuses to read (control characters), each at its line and column
  (ruamel reports only a character index into "<unicode string>").

Over 400 lines: the guarded parser parts (scanner, composer, constructor) must sit beside the position helpers that
read their nodes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, merge_attrib
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import Reader
from ruamel.yaml.scanner import RoundTripScanner

from lattigo_fleet.fleetfile.model import Location

# Where a value sits in a YAML document: the keys and indexes from its root.
YamlPath: TypeAlias = tuple[Any, ...]

# See "Limits" above.
MAX_ALIAS_NODES: Final = 1_000_000
# The text aliases may repeat (characters of scalars, beyond those written in the file): a few nodes of long
# strings expand to gigabytes once validated, hashed or sent, and no real fleet repeats more than its own size.
MAX_ALIAS_CHARS: Final = 16 << 20
MAX_DEPTH: Final = 100
MAX_INT_DIGITS: Final = 4300  # Python's default sys.get_int_max_str_digits()
_INT_BOUND: Final = 10**MAX_INT_DIGITS
MAX_CHARACTER_ISSUES: Final = 10  # characters YAML refuses, reported one by one; the rest are counted


@dataclass
class _Doc:
    file: str
    kind: str  # "main" | "fragment"
    lines: list[str]
    root: Any = None
    data: Any = None
    fast: bool = False  # read by the fast path: no positions (see loader._fast_data)


def _yaml(allow_duplicate_keys: bool = False) -> YAML:
    yaml = YAML(typ="rt")
    yaml.Scanner = _GuardedScanner
    yaml.Composer = _GuardedComposer
    yaml.Constructor = _GuardedConstructor
    yaml.allow_duplicate_keys = allow_duplicate_keys
    return yaml


# --------------------------------------------------------------------------------------------------
# Parsing hostile files


class _Refused(MarkedYAMLError):
    """A file refused while it is parsed (a limit crossed, a value that cannot be read): ``message`` at
    ``problem_mark``.  ``path`` is the field path of the node; if it is None, the loader finds the path
    of ``node`` in the composed tree (``_GuardedComposer.root``) or, without a node, takes the path
    the composer was reading (``_GuardedComposer.current_path``)."""

    def __init__(self, message: str, mark: Any, path: YamlPath | None = None, node: Any = None) -> None:
        super().__init__(problem=message, problem_mark=mark)
        self.message = message
        self.path = path
        self.node = node


_KEY: Final = object()  # in a path under construction: "inside a mapping key" (a key has no field path)


class _GuardedComposer(Composer):
    """ruamel's composer with the limits above: it counts the nodes each alias repeats, bounds the
    nesting, and records duplicate anchors instead of warning (``reused_anchors``: name, first and
    second mark, field path of the second)."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False
        self.reused_anchors: list[tuple[str, Any, Any, YamlPath]] = []
        self.root: Any = None
        self._stack: list[Any] = []  # one path component per open node (None for the root)
        self._written = 0  # nodes written in the file
        self._repeated = 0  # nodes repeated by aliases
        self._repeated_chars = 0  # characters of scalars repeated by aliases
        self._written_chars = 0  # characters of scalars written in the file
        self._sizes: dict[int, tuple[int, int]] = {}  # id(complete node) → (nodes, characters), aliases expanded

    def compose_document(self) -> Any:
        self.root = super().compose_document()
        return self.root

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)  # raises for an undefined alias
            nodes, chars = self._size(node)
            self._repeated += nodes
            self._repeated_chars += chars
            limit = MAX_ALIAS_NODES + self._written
            text_limit = MAX_ALIAS_CHARS + self._written_chars
            if self._repeated_chars > text_limit:
                raise _Refused(
                    f"alias *{event.anchor}: the aliases of this file repeat more than {text_limit:,} characters "
                    f"of text ({MAX_ALIAS_CHARS:,} plus those written in the file), as a YAML bomb does; write the "
                    "values out or reuse less",
                    event.start_mark,
                    self._path(self._component(parent, index)),
                )
            if self._repeated > limit:
                raise _Refused(
                    f"alias *{event.anchor}: the aliases of this file repeat more than {limit:,} nodes "
                    f"({MAX_ALIAS_NODES:,} plus one per node written in the file), as a YAML bomb does; "
                    "write the values out or reuse less",
                    event.start_mark,
                    self._path(self._component(parent, index)),
                )
            return node
        self._written += 1
        self._stack.append(self._component(parent, index))
        if len(self._stack) > MAX_DEPTH:
            path = self._path()
            raise _Refused(
                f"nested more than {MAX_DEPTH} levels deep: a fleet file needs fewer than 10",
                event.start_mark,
                path[:4] + ("…",) if len(path) > 4 else path,
            )
        first = self.anchors.get(event.anchor) if event.anchor is not None else None
        node = super().compose_node(parent, index)
        if isinstance(node, ScalarNode) and isinstance(node.value, str):
            self._written_chars += len(node.value)
        if first is not None:
            self.reused_anchors.append((event.anchor, first.start_mark, node.start_mark, self._path()))
        self._stack.pop()
        return node

    @staticmethod
    def _component(parent: Any, index: Any) -> Any:
        if parent is None:
            return None
        if isinstance(parent, MappingNode):
            if index is None:
                return _KEY
            return index.value if isinstance(index, ScalarNode) else "?"
        return index

    def current_path(self) -> YamlPath:
        return self._path()

    def _path(self, *extra: Any) -> YamlPath:
        path: list[Any] = []
        for part in [*self._stack[1:], *extra]:
            if part is _KEY:
                break
            path.append(part)
        return tuple(path)

    def _size(self, node: Any) -> tuple[int, int]:
        """How many nodes ``node`` stands for, and characters of scalars, aliases in it expanded (memoised:
        each node is walked once however often it is aliased).  A collection still open (a recursive alias,
        which the loader reports) counts as one node of no text."""
        sizes = self._sizes
        todo: list[tuple[Any, bool]] = [(node, False)]
        while todo:
            current, children_done = todo.pop()
            if id(current) in sizes:
                continue
            if isinstance(current, ScalarNode):
                sizes[id(current)] = (1, len(current.value) if isinstance(current.value, str) else 0)
                continue
            if current.end_mark is None:
                continue
            if isinstance(current, MappingNode):
                children = [n for pair in current.value for n in pair]
            else:
                children = current.value
            if children_done:
                parts = [sizes.get(id(child), (1, 0)) for child in children]
                sizes[id(current)] = (1 + sum(n for n, _ in parts), sum(c for _, c in parts))
            else:
                todo.append((current, True))
                todo.extend((child, False) for child in children if id(child) not in sizes)
        return sizes.get(id(node), (1, 0))


class _GuardedScanner(RoundTripScanner):
    """ruamel's scanner with flow collections nested at most :data:`MAX_DEPTH` deep."""

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if len(self.flow_context) >= MAX_DEPTH:
            raise _Refused(
                f"nested more than {MAX_DEPTH} levels deep: a fleet file needs fewer than 10", self.reader.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass, to_push)


class _Referents(list[Any]):
    """The maps that merge one map (ruamel's ``CommentedMap._ref``, used only to dump), with ``in`` by
    identity in constant time instead of by equality of whole mappings (quadratic in the merges)."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: set[int] = set()

    def __contains__(self, item: object) -> bool:
        return id(item) in self._ids

    def append(self, item: Any) -> None:
        self._ids.add(id(item))
        super().append(item)


class _GuardedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor, with a value it cannot build (an integer too long for Python,
    a date such as 2024-13-01) refused at its position rather than raised as a bare ValueError."""

    def construct_yaml_int(self, node: Any) -> Any:
        digits = node.value.replace("_", "").lstrip("+-")
        too_long = f"this number is too long: more than {MAX_INT_DIGITS:,} digits"
        if len(digits) > MAX_INT_DIGITS and digits[:2].lower() not in ("0x", "0o", "0b"):
            raise _Refused(f"{too_long} ({len(digits):,})", node.start_mark, node=node)
        value = super().construct_yaml_int(node)
        if abs(value) >= _INT_BOUND:  # a hexadecimal, octal or binary number: read, but not printable
            raise _Refused(too_long, node.start_mark, node=node)
        return value

    def construct_yaml_map(self, node: Any) -> Iterator[CommentedMap]:
        steps = super().construct_yaml_map(node)
        data = next(steps)
        data._ref = _Referents()
        yield data
        for _ in steps:
            pass

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, OverflowError) as e:
            shown = node.value if isinstance(node, ScalarNode) and len(node.value) <= 40 else "this value"
            raise _Refused(f"cannot read {shown}: {e}", node.start_mark, node=node) from None


_GuardedConstructor.add_constructor("tag:yaml.org,2002:int", _GuardedConstructor.construct_yaml_int)
_GuardedConstructor.add_constructor("tag:yaml.org,2002:map", _GuardedConstructor.construct_yaml_map)


def _path_of(root: Any, target: Any) -> YamlPath:
    """The field path of ``target`` in the composed tree (the first way to reach it), or ``()``."""
    todo: list[tuple[Any, YamlPath]] = [(root, ())]
    seen: set[int] = set()
    while todo:
        node, path = todo.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                todo.append((value, (*path, key.value if isinstance(key, ScalarNode) else "?")))
                todo.append((key, path))
        elif isinstance(node, SequenceNode):
            todo.extend((item, (*path, i)) for i, item in reversed(list(enumerate(node.value))))
    return ()


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` of ``text``, counted as ruamel counts them: a line
    ends at \\n, \\r\\n or a lone \\r, and a byte-order mark takes no column."""
    breaks = list(re.finditer(r"\r\n|\r|\n", text[:index]))
    start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, index - start - text.count("\ufeff", start, index) + 1


def _bad_characters(text: str) -> list[tuple[int, int, str]]:
    """Each character YAML does not allow (ruamel's own rule), as (line, column, message): the first
    MAX_CHARACTER_ISSUES one by one, then one more entry counting the rest."""
    found: list[tuple[int, int, str]] = []
    matches = Reader.NON_PRINTABLE.finditer(text)
    for match in matches:
        if len(found) == MAX_CHARACTER_ISSUES:
            rest = 1 + sum(1 for _ in matches)
            line, col = _line_col(text, match.start())
            found.append((line, col, f"{rest:,} more character{'s' if rest != 1 else ''} that YAML does not allow"))
            break
        char = match.group()
        what = "control character" if unicodedata.category(char) == "Cc" else "character"
        line, col = _line_col(text, match.start())
        found.append((line, col, f"{what} U+{ord(char):04X} is not allowed in YAML"))
    return found


def _duplicate_keys(text: str) -> list[tuple[YamlPath, tuple[int, int], tuple[int, int]]]:
    """Every repeated key of every mapping: (path, its position, the first one's), 0-based."""
    try:
        root = _yaml().compose(text)
    except YAMLError:
        return []
    found = []
    visited: set[int] = set()

    def walk(node: Any, path: YamlPath) -> None:
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
            return tuple(container.lc.item(key))
        if isinstance(container, CommentedMap):
            owner = _owner(container, key)
            if owner is None:
                return None
            key_pos = tuple(owner.lc.key(key))
            value_pos = tuple(owner.lc.value(key))
            if mode == "key" or (owner[key] is None and value_pos[0] != key_pos[0]):
                return key_pos
            if mode == "object" and value_pos >= key_pos:
                return key_pos
            return value_pos
    except (KeyError, IndexError, TypeError):
        pass
    return None


def _first_content(lines: list[str], file: str) -> Location:
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "%", "---")):
            return Location(file, number, len(line) - len(line.lstrip()) + 1)
    return Location(file, 1, 1)


def _locate(doc: _Doc, path: YamlPath, mode: str = "value") -> Location:
    """The position of the node at ``path``: of its key (mode "key"), its value ("value") or either
    ("object", see _child_pos), in the mapping that literally holds it (merge keys followed); for list
    items, the item."""
    if doc.fast:
        return Location(doc.file, 0, 0)  # not known: the fleet is loaded again with positions when one is needed
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
