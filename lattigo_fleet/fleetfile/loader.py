"""Loading: fleet.yaml and its fleet.d files → a :class:`~lattigo_fleet.fleetfile.model.FleetSpec`, or a
:class:`~lattigo_fleet.fleetfile.model.FleetError` listing every problem.

Over 400 lines because ``_Loader`` is one pass that reads top to bottom (read and parse each file,
validate it against the schema, check across files, then merge defaults and groups into each SIM and
record where every value is written); split, the steps would lose the state they share.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema.exceptions import relevance
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from lattigo_fleet.fleetfile.messages import _did_you_mean, _explain
from lattigo_fleet.fleetfile.model import (
    DEFAULT_MAX_CHANGES,
    DEFAULT_ON_REMOVE,
    DEFAULT_STATE,
    SIM_ONLY_FIELDS,
    UNMANAGED,
    DesiredSim,
    FleetError,
    FleetSpec,
    Issue,
    Location,
    Policy,
    UsageLimit,
    _Written,
)
from lattigo_fleet.fleetfile.positions import (
    YamlPath,
    _bad_characters,
    _Doc,
    _duplicate_keys,
    _first_content,
    _fmt_path,
    _locate,
    _locate_key,
    _path_of,
    _Refused,
    _yaml,
)
from lattigo_fleet.fleetfile.schema import _fast_validator, _validator


def load_fleet(path: str | os.PathLike[str] = "fleet.yaml", *, root: str | os.PathLike[str] | None = None) -> FleetSpec:
    """Read, validate and normalise fleet.yaml and its fleet.d files.  Raises :class:`FleetError`
    listing every problem found (and never anything else for bad input).

    Two ways, one result. A plain valid file (no anchors, aliases, tags, merge keys or unusual scalars:
    what `lattigo-fleet import` writes and most teams keep) is read by libyaml's C parser, about ten times
    faster than the position-keeping parser, which matters at 10,000 SIMs (a pre-commit hook, and twice per
    `pulumi` run). Its FleetSpec has no positions until one is asked for (`source_of`, an account check
    that finds something to report): then the files are read again the slow way. Anything else, and every
    file with a problem, is read the slow way from the start, so every error keeps its file:line:column.

    Every file read, links followed, must be inside `root` (default: the fleet file's directory)."""
    path = os.fspath(path)
    inside = os.fspath(root) if root is not None else None
    try:
        fleet = _Loader(path, fast=True, root=inside).load()
    except _NotFast:
        return _Loader(path, root=inside).load()
    fleet._reload = lambda: _Loader(path, root=inside).load()
    return fleet


class _NotFast(Exception):
    """The fast path cannot be sure of this file: read it with positions."""


# Where the fast path gives up: anchors/aliases (&, *), tags (!), merge keys (<<), directives (a line that
# starts with %; a `%` elsewhere, as in `max_changes: 10%`, is plain text), and characters YAML forbids. Such
# text is read with positions; a character inside a quoted note only costs time.
_SLOW_TEXT = re.compile(r"[&*!\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]|<<|^%", re.MULTILINE)
_DECIMAL = re.compile(r"[-+]?[0-9]+")
# Plain scalars that YAML 1.2 (ruamel) reads as something else than a string: numbers, booleans, null.
_YAML12_NOT_STR = re.compile(
    r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|true|True|TRUE|false|False|FALSE|null|Null|NULL|~|"
)


def _fast_data(text: str) -> Any:
    """Plain data from libyaml (C), for text the fast path can be sure of; else _NotFast. Scalars are taken as
    YAML 1.2 (ruamel's reading) reads them: anything YAML 1.1 reads differently (yes/no, octal, sexagesimal,
    floats, dates) is left to the slow path, and so are duplicate keys (libyaml keeps the last silently)."""
    import yaml as libyaml

    if _SLOW_TEXT.search(text) or not hasattr(libyaml, "CSafeLoader"):
        raise _NotFast
    try:
        root = libyaml.compose(text, Loader=libyaml.CSafeLoader)
    except (Exception, RecursionError):
        raise _NotFast from None

    def plain(node: Any, depth: int = 0) -> Any:
        if depth > 20:  # a fleet file nests about 6 deep: anything deeper is for the slow path's limits
            raise _NotFast
        if isinstance(node, libyaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = plain(key_node, depth + 1)
                if not isinstance(key, str) or key in out:
                    raise _NotFast
                out[key] = plain(value_node, depth + 1)
            return out
        if isinstance(node, libyaml.SequenceNode):
            return [plain(item, depth + 1) for item in node.value]
        tag, value = node.tag.rsplit(":", 1)[-1], node.value
        if tag == "str":
            if not node.style and _YAML12_NOT_STR.fullmatch(value):  # a plain (unquoted) scalar
                raise _NotFast  # e.g. 0890…: a string to libyaml (YAML 1.1), a number to YAML 1.2
            return value
        if tag == "int" and _DECIMAL.fullmatch(value) and len(value) < 20:
            return int(value)
        if tag == "bool" and value in ("true", "false"):
            return value == "true"
        if tag == "null" and value in ("", "~", "null"):
            return None
        raise _NotFast

    return None if root is None else plain(root)


class _Loader:
    def __init__(self, path: str, fast: bool = False, root: str | None = None) -> None:
        self.path = path
        self.fast = fast
        self.issues: list[tuple[int, Issue]] = []  # (file order, issue)
        self.docs: list[_Doc] = []
        self.file_order: dict[str, int] = {}
        self.unreadable = False  # fleet.yaml itself could not be read: nothing else is worth checking
        self.unread: list[str] = []  # files not read or not parsed: what they declare is unknown
        self.surrogates = False  # some value or key holds a lone UTF-16 surrogate (see _has_lone_surrogates)
        # Every file read must be inside the fleet's directory once links are followed: a pull request that
        # adds `fleet.d/p.yaml -> /etc/passwd` must not get the runner's files read (or quoted back to it).
        self.root = os.path.realpath(root if root is not None else os.path.dirname(os.path.abspath(path)))

    def _leaves_the_fleet_directory(self, display: str) -> bool:
        real = os.path.realpath(display)
        return os.path.commonpath([real, self.root]) != self.root

    # ---- issues
    def _add(self, doc: _Doc | str, location: Location, fieldpath: str, message: str) -> None:
        file = doc if isinstance(doc, str) else doc.file
        self.issues.append(
            (self.file_order.setdefault(file, len(self.file_order)), Issue.at(location, fieldpath, message))
        )

    def _add_at(self, doc: _Doc, path: YamlPath, mode: str, message: str) -> None:
        self._add(doc, _locate(doc, path, mode), _fmt_path(path), message)

    def _sorted_issues(self) -> list[Issue]:
        # One issue per place and message: a bad value behind an anchor is reported once, not once per
        # SIM that uses it (the first SIM's field path is kept).
        seen: set[tuple[str, int, int, str]] = set()
        out = []
        for _, issue in sorted(self.issues, key=lambda t: (t[0], t[1].line, t[1].column)):
            key = (issue.file, issue.line, issue.column, issue.message)
            if key not in seen:
                seen.add(key)
                out.append(issue)
        return out

    # ---- main flow
    def load(self) -> FleetSpec:
        main = self._read(self.path, "main")
        if main is None and self.unreadable:
            if self.fast:
                raise _NotFast
            raise FleetError(self._sorted_issues())
        for display, kind in self._fleet_d_files():
            self._read(display, kind)
        for doc in self.docs:
            self._validate_schema(doc)
        if self.surrogates:
            # Every later check would quote such a value in its message, which no output could print.
            raise FleetError(self._sorted_issues())
        groups = self._collect_groups()
        sims = self._collect_sims(groups)
        if self.issues:
            if self.fast:
                raise _NotFast  # every problem is reported with its position, by the slow path
            raise FleetError(self._sorted_issues())
        return self._build(groups, sims)

    def _fleet_d_files(self) -> Iterator[tuple[str, str]]:
        stem = os.path.splitext(os.path.basename(self.path))[0]
        display_dir = os.path.join(os.path.dirname(self.path), f"{stem}.d")
        directory = Path(display_dir)
        if not directory.exists():
            return
        if self._leaves_the_fleet_directory(display_dir):
            self._add(display_dir, Location(display_dir, 1, 1), "", LEAVES_THE_FLEET_DIRECTORY)
            self.unread.append(display_dir)
            return
        if not directory.is_dir():
            self._add(
                display_dir,
                Location(display_dir, 1, 1),
                "",
                "is not a directory: fleet.d must be a directory of *.yaml files",
            )
            return
        try:
            entries = sorted(directory.iterdir(), key=lambda p: p.name)
        except OSError as e:
            self._add(display_dir, Location(display_dir, 1, 1), "", f"cannot list the directory: {e.strerror or e}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden: editors' swap files, .gitkeep
            display = os.path.join(display_dir, entry.name)
            # Every other entry is read or is an error: one skipped in silence would make its SIMs look removed
            # (and, with on_remove: suspend, get them suspended).
            if entry.name.endswith(".yaml"):
                problem = _not_a_regular_file(entry)
                if problem is None:
                    yield display, "fragment"
                else:
                    self._add(display, Location(display, 1, 1), "", f"not read: {problem}")
                    self.unread.append(display)
            elif entry.is_dir() or entry.is_symlink() and _not_a_regular_file(entry) is not None:
                self._add(
                    display,
                    Location(display, 1, 1),
                    "",
                    f"not read: {directory.name} takes only *.yaml "
                    f"files, not directories or broken links (move it out of {directory.name})",
                )
                self.unread.append(display)
            elif not entry.name.endswith(".yml"):
                continue  # a README or other notes beside the fragments: not YAML, never SIMs
            else:
                self._add(
                    display,
                    Location(display, 1, 1),
                    "",
                    f"not read: {directory.name} takes only *.yaml files (rename it to {entry.name[:-4]}.yaml)",
                )
                self.unread.append(display)

    def _read(self, display: str, kind: str) -> _Doc | None:
        """Parse one file into a _Doc (appended to self.docs), or report why not and return None."""
        self.file_order.setdefault(display, len(self.file_order))
        text = self._read_text(display, kind)
        if text is None:
            return None
        doc = _Doc(display, kind, text.splitlines())
        if self.fast:
            doc.data, doc.fast = _fast_data(text), True
            if doc.data is None:
                raise _NotFast  # an empty file: the slow path says where its content should start
            self.docs.append(doc)
            return doc
        yaml = _yaml()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    doc.root = yaml.load(text)
                except DuplicateKeyError as e:
                    # Report every duplicate key (with both places), then carry on with the first values so
                    # that the rest of the file is checked too.
                    duplicates = _duplicate_keys(text)
                    if not duplicates:
                        self._yaml_error(doc, yaml, e)
                        return None
                    for path, (line, col), (first_line, first_col) in duplicates:
                        key = path[-1]
                        what = f"group '{key}'" if len(path) == 2 and path[0] == "groups" else f"key '{key}'"
                        self._add(
                            doc,
                            Location(display, line + 1, col + 1),
                            _fmt_path(path),
                            f"{what} is declared twice in this file: first at "
                            f"{display}:{first_line + 1}:{first_col + 1}",
                        )
                    yaml = _yaml(allow_duplicate_keys=True)
                    doc.root = yaml.load(text)
        except ReaderError:
            # A character YAML does not allow: ruamel gives only an index into "<unicode string>".
            for line, col, message in _bad_characters(text):
                self._add(doc, Location(display, line, col), "", message)
            self.unread.append(display)
            return None
        except YAMLError as e:
            self._yaml_error(doc, yaml, e)
            return None
        except RecursionError:
            self._add(doc, Location(display, 1, 1), "", "invalid YAML: nested too deeply")
            self.unread.append(display)
            return None
        except (ValueError, OverflowError) as e:  # a last resort: _GuardedConstructor places what it can
            self._add(doc, Location(display, 1, 1), "", f"invalid YAML: cannot read a value: {e}")
            self.unread.append(display)
            return None
        self._yaml_warnings(doc, yaml, caught)
        if doc.root is None:
            what = "version: 1 and sims" if kind == "main" else "groups or sims"
            self._add(doc, _first_content(doc.lines, display), "", f"file is empty: expected {what}")
            return None
        doc.data = self._plain(doc, doc.root, (), {}, set())
        self.docs.append(doc)
        return doc

    def _read_text(self, display: str, kind: str) -> str | None:
        here = Location(display, 1, 1)
        problem = _not_a_regular_file(Path(display)) if os.path.lexists(display) else None
        if os.path.lexists(display) and self._leaves_the_fleet_directory(display):
            problem = LEAVES_THE_FLEET_DIRECTORY
        try:
            if problem is not None:
                raise _Unreadable(problem)
            with open(display, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
            if len(raw) > MAX_FILE_BYTES:
                raise _Unreadable(f"is larger than {MAX_FILE_BYTES // (1 << 20)} MiB: not a fleet file")
        except _Unreadable as e:
            self._add(display, here, "", str(e))
        except FileNotFoundError:
            self._add(display, here, "", "no such file")
        except IsADirectoryError:
            self._add(display, here, "", "is a directory, not a file")
        except OSError as e:
            self._add(display, here, "", f"cannot read the file: {e.strerror or e}")
        else:
            try:
                return raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = raw[: e.start].count(b"\n") + 1
                col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
                self._add(display, Location(display, line, col), "", "is not UTF-8 text")
        if kind == "main":
            self.unreadable = True
        self.unread.append(display)
        return None

    def _yaml_warnings(self, doc: _Doc, yaml: Any, caught: list[warnings.WarningMessage]) -> None:
        """Duplicate anchors (an error: a second &a silently changes every later *a) and ruamel's
        warnings (e.g. a YAML 1.1 float without a dot), as issues rather than Python warnings."""
        for name, first, second, path in yaml.composer.reused_anchors:
            self._add(
                doc,
                Location(doc.file, second.line + 1, second.column + 1),
                _fmt_path(path),
                f"anchor &{name} is defined twice in this file: first at {doc.file}:{first.line + 1}:"
                f"{first.column + 1} (an alias means the latest one above it: rename one of them)",
            )
        for warning in caught:
            node = getattr(warning.message, "node", None)
            mark = getattr(node, "start_mark", None)
            loc = Location(doc.file, mark.line + 1, mark.column + 1) if mark else Location(doc.file, 1, 1)
            text = next((line.strip() for line in str(warning.message).splitlines() if line.strip()), "")
            self._add(doc, loc, "", f"invalid YAML: {text or type(warning.message).__name__}")

    def _yaml_error(self, doc: _Doc, yaml: Any, e: YAMLError) -> None:
        self.unread.append(doc.file)
        if isinstance(e, _Refused):
            mark = e.problem_mark
            path = e.path
            if path is None:
                path = _path_of(yaml.composer.root, e.node) if e.node is not None else yaml.composer.current_path()
            self._add(doc, Location(doc.file, mark.line + 1, mark.column + 1), _fmt_path(path), e.message)
        elif isinstance(e, MarkedYAMLError):
            mark = e.problem_mark or e.context_mark
            message = e.problem or e.context or "invalid YAML"
            if e.context and e.problem and e.context_mark is not None:
                message += f" ({e.context} at line {e.context_mark.line + 1}, column {e.context_mark.column + 1})"
            loc = Location(doc.file, mark.line + 1, mark.column + 1) if mark else Location(doc.file, 1, 1)
            self._add(doc, loc, "", f"invalid YAML: {message}")
        else:
            self._add(doc, Location(doc.file, 1, 1), "", f"invalid YAML: {e}")

    def _plain(self, doc: _Doc, node: Any, path: YamlPath, memo: dict[int, Any], stack: set[int]) -> Any:
        """The ruamel tree as plain JSON-like data for jsonschema (merge keys applied, aliases
        shared), reporting what JSON cannot hold: non-string keys, custom tags, recursive aliases."""
        if isinstance(node, (dict, list)):
            if id(node) in memo:
                return memo[id(node)]
            if id(node) in stack:
                self._add_at(doc, path, "value", "recursive alias: a YAML alias cannot contain itself")
                return None
            stack.add(id(node))
            if isinstance(node, dict):
                out: Any = {}
                for key in node:
                    if not isinstance(key, str):
                        loc = _locate_key(doc, node, key)
                        shown = json.dumps(key) if isinstance(key, int | float | bool) or key is None else str(key)
                        self._add(doc, loc, _fmt_path(path), f'the key {shown} must be a string: quote it ("{shown}")')
                        continue
                    out[str(key)] = self._plain(doc, node[key], (*path, str(key)), memo, stack)
            else:
                out = [self._plain(doc, item, (*path, i), memo, stack) for i, item in enumerate(node)]
            stack.discard(id(node))
            memo[id(node)] = out
            return out
        if isinstance(node, (bool, ScalarBoolean)):
            return bool(node)
        if isinstance(node, TaggedScalar):
            self._add_at(
                doc, path, "value", f"YAML tags are not supported here ({node.tag.value if node.tag else '?'})"
            )
            return node.value
        if isinstance(node, str):
            return str(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node  # None, dates: the schema reports what does not fit

    # ---- schema
    def _validate_schema(self, doc: _Doc) -> None:
        if self._has_lone_surrogates(doc):
            return  # no other message could be printed about this file's values
        if self.fast:
            if not _fast_validator(doc.kind).is_valid(doc.data):
                raise _NotFast  # the slow path explains every error, with its position
            return
        # Best-first (jsonschema's relevance) within one instance path, paths in document order.
        errors = sorted(_validator(doc.kind).iter_errors(doc.data), key=relevance, reverse=True)
        errors.sort(key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])
        for error in errors:
            for path, mode, message in _explain(error, doc):
                self._add_at(doc, path, mode, message)

    def _has_lone_surrogates(self, doc: _Doc) -> bool:
        """YAML's `\\u` escapes can spell half of a UTF-16 pair: a string no UTF-8 output can carry (every
        later message, JSON document or HTTP body would fail on it). Each one is an error at its position."""
        if not any("\\u" in line or "\\U" in line for line in doc.lines):
            return False  # a surrogate cannot be in UTF-8 text: only an escape spells one
        found = False

        def walk(value: Any, path: YamlPath) -> None:
            nonlocal found
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(key, str) and _SURROGATE.search(key):
                        if self.fast:
                            raise _NotFast
                        found = True
                        where = _locate(doc, (*path, key), "key")
                        shown = json.dumps(key)[:60]  # escaped: the key itself cannot be printed
                        self._add(doc, where, _fmt_path(path), f"the key {shown} contains a lone UTF-16 surrogate")
                    walk(item, (*path, key))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    walk(item, (*path, i))
            elif isinstance(value, str) and _SURROGATE.search(value):
                if self.fast:
                    raise _NotFast
                found = True
                self._add_at(doc, path, "value", "contains a lone UTF-16 surrogate (an invalid \\u escape)")

        walk(doc.data, ())
        self.surrogates = self.surrogates or found
        return found

    # ---- cross-file checks
    def _collect_groups(self) -> dict[str, tuple[_Doc, dict[str, Any]]]:
        groups: dict[str, tuple[_Doc, dict[str, Any]]] = {}
        for doc in self.docs:
            declared = doc.data.get("groups") if isinstance(doc.data, dict) else None
            if not isinstance(declared, dict):
                continue
            for name, body in declared.items():
                if name in groups:
                    first_doc = groups[name][0]
                    first = _locate(first_doc, ("groups", name), "key")
                    self._add_at(doc, ("groups", name), "key", f"group '{name}' is declared twice: first at {first}")
                    continue
                groups[name] = (doc, body if isinstance(body, dict) else {})
        return groups

    def _collect_sims(self, groups: dict[str, tuple[_Doc, dict[str, Any]]]) -> list[tuple[_Doc, int, dict[str, Any]]]:
        sims: list[tuple[_Doc, int, dict[str, Any]]] = []
        seen: dict[str, dict[str, tuple[Location, str]]] = {"iccid": {}, "imei": {}, "name": {}}
        for doc in self.docs:
            declared = doc.data.get("sims") if isinstance(doc.data, dict) else None
            if not isinstance(declared, list):
                continue
            for index, sim in enumerate(declared):
                if not isinstance(sim, dict):
                    continue
                sims.append((doc, index, sim))
                base = ("sims", index)
                iccid = sim.get("iccid")
                duplicate_iccid = False
                for key, label in (("iccid", "ICCID"), ("imei", "IMEI")):
                    value = sim.get(key)
                    if not isinstance(value, str):
                        continue
                    here = _locate(doc, (*base, key), "value")
                    if value in seen[key]:
                        first, first_path = seen[key][value]
                        self._add(
                            doc,
                            here,
                            _fmt_path((*base, key)),
                            f"{label} {value} is declared twice: first at {first} ({first_path})",
                        )
                        duplicate_iccid = duplicate_iccid or key == "iccid"
                    else:
                        seen[key][value] = (here, _fmt_path((*base, key)))
                name = sim.get("name")
                written = isinstance(name, str)
                if not written:
                    name = iccid
                if isinstance(name, str) and not duplicate_iccid:
                    name_path = (*base, "name" if written else "iccid")
                    here = _locate(doc, name_path, "value")
                    if name in seen["name"]:
                        first, first_path = seen["name"][name]
                        how = " (its ICCID, the default name)" if first_path.endswith(".iccid") else ""
                        self._add(
                            doc,
                            here,
                            _fmt_path(name_path),
                            f"the resource name '{name}' is already taken by {first_path}{how} at {first}",
                        )
                    else:
                        seen["name"][name] = (here, _fmt_path(name_path))
                group = sim.get("group")
                if isinstance(group, str) and group not in groups:
                    hint = _did_you_mean(group, groups)
                    known = f"the groups are {', '.join(sorted(groups))}" if groups else "no groups are declared"
                    if self.unread:
                        known += f" (unless it is declared in {', '.join(self.unread)}, which could not be read)"
                    self._add_at(doc, (*base, "group"), "value", f"unknown group '{group}'{hint}; {known}")
        return sims

    # ---- the result
    def _build(
        self, groups: dict[str, tuple[_Doc, dict[str, Any]]], sims: list[tuple[_Doc, int, dict[str, Any]]]
    ) -> FleetSpec:
        main = self.docs[0]
        defaults = main.data.get("defaults") or {}
        written: list[_Written] = []
        seen_written: set[tuple[str, Location, str]] = set()

        def note_written(doc: _Doc, path: YamlPath, body: dict[str, Any]) -> None:
            entries: list[tuple[str, str, YamlPath]] = []
            if isinstance(body.get("rate_plan"), str):
                entries.append(("rate_plan", body["rate_plan"], (*path, "rate_plan")))
            usage = body.get("usage_limit")
            if isinstance(usage, dict):
                for i, user in enumerate(usage.get("usernames") or ()):
                    entries.append(("username", user, (*path, "usage_limit", "usernames", i)))
            for kind, value, field_path in entries:
                loc = _locate(doc, field_path, "value")
                if (kind, loc, value) not in seen_written:
                    seen_written.add((kind, loc, value))
                    written.append(_Written(kind, value, loc, _fmt_path(field_path)))

        if defaults:
            note_written(main, ("defaults",), defaults)
        for name, (gdoc, body) in groups.items():
            note_written(gdoc, ("groups", name), body)

        desired: list[DesiredSim] = []
        locations: dict[str, dict[str, Location]] = {}
        for doc, index, sim in sims:
            base = ("sims", index)
            note_written(doc, base, sim)
            layers: list[tuple[_Doc, YamlPath, dict[str, Any]]] = [(doc, base, sim)]
            group = sim.get("group")
            if group:
                gdoc, gbody = groups[group]
                layers.append((gdoc, ("groups", group), gbody))
            if defaults:
                layers.append((main, ("defaults",), defaults))

            iccid = sim["iccid"]
            locs: dict[str, Location] = {"": _locate(doc, base, "value")}
            for key in SIM_ONLY_FIELDS:
                if key in sim:
                    locs[key] = _locate(doc, (*base, key), "value")
            locs.setdefault("name", locs["iccid"])

            values: dict[str, Any] = {}
            for key in (
                "state",
                "rate_plan",
                "region_code",
                "device_sku",
                "cost_center",
                "usage_limit",
                "ignore_changes",
            ):
                for ldoc, lpath, body in layers:
                    if key in body:
                        values[key] = body[key]
                        locs[key] = _locate(ldoc, (*lpath, key), "value")
                        if key == "usage_limit" and isinstance(body[key], dict):
                            for sub in ("kb_limit", "action", "usernames"):
                                if sub in body[key]:
                                    locs[f"usage_limit.{sub}"] = _locate(ldoc, (*lpath, key, sub), "value")
                            for i, _user in enumerate(body[key].get("usernames") or ()):
                                locs[f"usage_limit.usernames[{i}]"] = _locate(
                                    ldoc, (*lpath, key, "usernames", i), "value"
                                )
                        break
            notes: dict[str, str] = {}
            for ldoc, lpath, body in layers:
                layer_notes = body.get("notes")
                if not isinstance(layer_notes, dict):
                    continue
                locs.setdefault("notes", _locate(ldoc, (*lpath, "notes"), "value"))
                for key, value in layer_notes.items():
                    if key not in notes:
                        notes[key] = value
                        locs[f"notes.{key}"] = _locate(ldoc, (*lpath, "notes", key), "value")

            usage = values.get("usage_limit", UNMANAGED)
            if isinstance(usage, dict):
                usage = UsageLimit(
                    kb_limit=int(usage["kb_limit"]),
                    action=usage["action"],
                    usernames=tuple(usage.get("usernames") or ()),
                )
            desired.append(
                DesiredSim(
                    iccid=iccid,
                    imei=sim.get("imei"),
                    name=sim.get("name") or iccid,
                    group=group,
                    state=values.get("state", DEFAULT_STATE),
                    rate_plan=values.get("rate_plan"),
                    region_code=values.get("region_code"),
                    device_sku=values.get("device_sku"),
                    cost_center=values.get("cost_center"),
                    notes=notes,
                    usage_limit=usage,
                    ignore_changes=tuple(values.get("ignore_changes") or ()),
                )
            )
            locations[iccid] = locs

        policy_data = main.data.get("policy") or {}
        max_changes = policy_data.get("max_changes", DEFAULT_MAX_CHANGES)
        if isinstance(max_changes, str):
            policy = Policy(
                policy_data.get("on_remove", DEFAULT_ON_REMOVE), max_changes_percent=float(max_changes[:-1])
            )
        else:
            policy = Policy(policy_data.get("on_remove", DEFAULT_ON_REMOVE), max_changes=int(max_changes))
        return FleetSpec(
            sims=desired,
            policy=policy,
            path=self.path,
            files=[doc.file for doc in self.docs],
            version=int(main.data["version"]),
            _locations=locations,
            _written=written,
        )


_SURROGATE = re.compile("[\ud800-\udfff]")

LEAVES_THE_FLEET_DIRECTORY = (
    "not read: a link that leaves the fleet's directory (only files inside the directory of the fleet file are read)"
)

# A fleet of 100,000 SIMs is about 10 MiB of YAML; a larger file is a mistake (or /dev/zero).
MAX_FILE_BYTES = 64 << 20


class _Unreadable(Exception):
    pass


def _not_a_regular_file(path: Path) -> str | None:
    """Why `path` cannot be read as a file (following symlinks), or None if it is a regular file."""
    import errno
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a symlink to a file that does not exist" if path.is_symlink() else "no such file"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop"
        return f"cannot read it: {e.strerror or e}"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device), so it is not read"
    return None
