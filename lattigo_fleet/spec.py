"""fleet.yaml → validated, normalised desired state.

Pure: it reads fleet.yaml and the ``*.yaml`` files of the ``fleet.d`` directory beside it, and nothing
else (no network, no Pulumi).  :func:`load_fleet` either returns a :class:`FleetSpec` or raises a
:class:`FleetError` that lists *every* problem found, each as an :class:`Issue` with file:line:column
(1-based) and the field path, so that a reviewer sees all of them at once and never a traceback.

Decisions (see also ``schemas/fleet.schema.json``, the single source of the field rules):

- ICCIDs, IMEIs and every other string field must be written as YAML strings.  An unquoted number
  (``iccid: 8901...``) is an error that shows the quoted form to write: YAML reads unquoted digits as an
  integer and silently drops leading zeros (``region_code: 02134`` would become ``2134``).
- ``state`` absent at every level means ``active``: every declared SIM is to be activated.
- Other fields absent at every level are *unmanaged* (``None`` for strings, missing keys in
  ``notes``, :data:`UNMANAGED` for ``usage_limit``): the reconciler must not touch them.
  ``usage_limit: null`` is managed and means "no limit"; ``""`` is a managed, empty string.
- ``policy.on_remove`` defaults to ``retain``; ``policy.max_changes`` defaults to ``"10%"``.  A
  percentage is of the fleet size the caller passes to :meth:`Policy.limit_for`, rounded *up* (as a
  Kubernetes PodDisruptionBudget rounds ``maxUnavailable``), so that a small fleet may still suspend
  one SIM; ``0`` or ``"0%"`` allow none.
- ``fleet.d`` is the directory ``<stem>.d`` beside the fleet file (``fleet.d`` for ``fleet.yaml``).
  Its ``*.yaml`` files are read in name order; a ``*.yml`` file there is an error rather than silently
  ignored (its SIMs would otherwise look removed).  An empty file (or one of only comments) is an error,
  in fleet.d too.
- Top-level keys starting with ``x-`` (in fleet.yaml and fleet.d files) are ignored: a place for anchors.
- Issues are sorted by file (fleet.yaml, then fleet.d in name order), then line and column; errors at
  the same place come best-first (jsonschema's relevance).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import enum
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, NamedTuple, TextIO

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match, relevance
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar, merge_attrib
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean

__all__ = [
    "ACTIVATION_FIELDS",
    "DEFAULT_MAX_CHANGES",
    "DEFAULT_STATE",
    "IGNORABLE_FIELDS",
    "NO_LIMIT",
    "NOTE_FIELDS",
    "ON_REMOVE_CHOICES",
    "SCHEMA_PATH",
    "STATES",
    "UNMANAGED",
    "USAGE_ACTIONS",
    "DesiredSim",
    "FleetError",
    "FleetSpec",
    "Issue",
    "Location",
    "Policy",
    "Unmanaged",
    "UsageLimit",
    "fleet_schema",
    "load_fleet",
    "main_validate",
    "validate_against_account",
]

SCHEMA_PATH: Final = Path(__file__).resolve().parent.parent / "schemas" / "fleet.schema.json"

STATES: Final = ("active", "suspended", "suspended_no_billing")
DEFAULT_STATE: Final = "active"
NOTE_FIELDS: Final = ("note", "note1", "note2", "note3")
USAGE_ACTIONS: Final = ("suspend", "email")
ON_REMOVE_CHOICES: Final = ("retain", "suspend")
DEFAULT_ON_REMOVE: Final = "retain"
DEFAULT_MAX_CHANGES: Final = "10%"
# Used only to activate a SIM: the API can neither read nor change them on an activated SIM.
ACTIVATION_FIELDS: Final = ("rate_plan", "region_code", "device_sku")
# What `ignore_changes` may name (the schema's enum; tests pin them equal).
IGNORABLE_FIELDS: Final = ("state", "cost_center", "notes")
# How "no usage limit" is written in the resource inputs: Pulumi drops None-valued inputs, and absent
# means "not managed".
NO_LIMIT: Final = "none"

# Fields that defaults and groups may set; the SIM may set these and the SIM-only ones.
SHARED_FIELDS: Final = (
    "state", "rate_plan", "region_code", "device_sku", "cost_center", "notes", "usage_limit", "ignore_changes",
)
SIM_ONLY_FIELDS: Final = ("iccid", "imei", "name", "group")
_OPTIONAL_STRINGS: Final = ("imei", "rate_plan", "region_code", "device_sku", "cost_center")


# --------------------------------------------------------------------------------------------------
# Positions and errors


class Location(NamedTuple):
    """Where something is written: ``file`` as given to :func:`load_fleet`, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Issue:
    """One problem, e.g. ``fleet.yaml:12:5: sims[3].imei: must be 15 digits (IMEI) or 16 (IMEISV)``.

    ``line`` and ``column`` are 1-based; ``field`` is the path of the field (``""`` for the whole file).
    """

    file: str
    line: int
    column: int
    field: str
    message: str

    @classmethod
    def at(cls, location: Location, field: str, message: str) -> Issue:
        return cls(location.file, location.line, location.column, field, message)

    @property
    def location(self) -> Location:
        return Location(self.file, self.line, self.column)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class FleetError(Exception):
    """fleet.yaml is not valid: ``issues`` lists every problem; ``str()`` gives one per line."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: list[Issue] = list(issues)
        super().__init__(self.issues)

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


# --------------------------------------------------------------------------------------------------
# The desired state


class Unmanaged(enum.Enum):
    """The type of :data:`UNMANAGED`: a field declared nowhere, which the reconciler must leave alone."""

    UNMANAGED = "UNMANAGED"

    def __repr__(self) -> str:
        return "UNMANAGED"


UNMANAGED: Final = Unmanaged.UNMANAGED


@dataclass(frozen=True)
class UsageLimit:
    """A monthly usage limit: ``kb_limit`` KB, then ``action`` (suspend|email), alerting ``usernames``.

    ``usernames`` is normalised to a sorted tuple without repeats (their order means nothing).
    """

    kb_limit: int
    action: str
    usernames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        kb = self.kb_limit
        if isinstance(kb, float) and kb.is_integer():  # numbers that went through Pulumi come back as floats
            kb = int(kb)
        if isinstance(kb, bool) or not isinstance(kb, int) or kb < 1:
            raise ValueError(f"usage_limit.kb_limit must be a positive integer, not {self.kb_limit!r}")
        if self.action not in USAGE_ACTIONS:
            raise ValueError(f"usage_limit.action must be one of {', '.join(USAGE_ACTIONS)}, not {self.action!r}")
        if isinstance(self.usernames, str) or not all(isinstance(u, str) for u in self.usernames):
            raise ValueError(f"usage_limit.usernames must be a list of strings, not {self.usernames!r}")
        usernames = tuple(sorted(set(self.usernames)))
        if self.action == "email" and not usernames:
            raise ValueError("usage_limit with action 'email' needs at least one username")
        object.__setattr__(self, "kb_limit", kb)
        object.__setattr__(self, "usernames", usernames)

    def to_dict(self) -> dict[str, Any]:
        return {"kb_limit": self.kb_limit, "action": self.action, "usernames": list(self.usernames)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UsageLimit:
        return cls(kb_limit=d["kb_limit"], action=d["action"], usernames=tuple(d.get("usernames") or ()))


@dataclass(frozen=True)
class DesiredSim:
    """One SIM as fleet.yaml wants it, defaults and group already applied.

    ``None`` (``UNMANAGED`` for ``usage_limit``, a missing key in ``notes``) means unmanaged: declared
    nowhere, so the reconciler must not touch it.  ``usage_limit=None`` means "ensure no limit".
    ``group`` records where shared values came from; it takes no part in equality (two SIMs with the
    same effective fields are equal) nor in :meth:`to_inputs`, so moving a SIM between groups that
    set the same values is no change.
    """

    iccid: str
    imei: str | None = None
    name: str = ""  # "" → the ICCID
    group: str | None = field(default=None, compare=False)
    state: str = DEFAULT_STATE
    rate_plan: str | None = None
    region_code: str | None = None
    device_sku: str | None = None
    cost_center: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    usage_limit: UsageLimit | None | Unmanaged = UNMANAGED
    ignore_changes: tuple[str, ...] = ()  # live differences in these fields are left alone (see the schema)

    def __post_init__(self) -> None:
        if not isinstance(self.iccid, str) or not self.iccid:
            raise ValueError(f"iccid must be a non-empty string, not {self.iccid!r}")
        if not self.name:
            object.__setattr__(self, "name", self.iccid)
        if self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")
        for name in _OPTIONAL_STRINGS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None, not {value!r}")
        unknown = set(self.notes) - set(NOTE_FIELDS)
        if unknown:
            raise ValueError(f"unknown note fields {sorted(unknown)}: the note fields are {', '.join(NOTE_FIELDS)}")
        if not all(isinstance(v, str) for v in self.notes.values()):
            raise ValueError(f"notes must be strings: {self.notes!r}")
        object.__setattr__(self, "notes", {k: self.notes[k] for k in NOTE_FIELDS if k in self.notes})
        if not (self.usage_limit is None or self.usage_limit is UNMANAGED or isinstance(self.usage_limit, UsageLimit)):
            raise ValueError(f"usage_limit must be a UsageLimit, None or UNMANAGED, not {self.usage_limit!r}")
        ignored = tuple(self.ignore_changes or ())
        if isinstance(self.ignore_changes, str) or not set(ignored) <= set(IGNORABLE_FIELDS):
            raise ValueError(f"ignore_changes may name {', '.join(IGNORABLE_FIELDS)}, not {self.ignore_changes!r}")
        object.__setattr__(self, "ignore_changes", tuple(f for f in IGNORABLE_FIELDS if f in ignored))

    def __hash__(self) -> int:
        return hash(
            (
                self.iccid,
                self.imei,
                self.name,
                self.state,
                self.rate_plan,
                self.region_code,
                self.device_sku,
                self.cost_center,
                tuple(self.notes.items()),
                self.usage_limit,
                self.ignore_changes,
            )
        )

    @property
    def managed(self) -> tuple[str, ...]:
        """The managed fields, sorted: among imei, state, rate_plan, region_code, device_sku,
        cost_center, notes.note … notes.note3, usage_limit.  (``state`` is always managed.)"""
        names = [n for n in _OPTIONAL_STRINGS if getattr(self, n) is not None]
        names.append("state")
        names += [f"notes.{k}" for k in self.notes]
        if self.usage_limit is not UNMANAGED:
            names.append("usage_limit")
        return tuple(sorted(names))

    def is_managed(self, field_name: str) -> bool:
        """Whether fleet.yaml declares ``field_name`` (``note1`` and ``notes.note1`` both work;
        ``notes`` is managed if any note field is)."""
        if field_name in ("iccid", "name"):
            return True
        if field_name in NOTE_FIELDS:
            field_name = f"notes.{field_name}"
        if field_name == "notes":
            return bool(self.notes)
        return field_name in self.managed

    def activation_problems(self) -> list[str]:
        """Why this SIM could not be activated if it is new (empty: it can).  The spec cannot know
        whether a SIM is new; the planner asks this when it finds the ICCID absent from the account."""
        problems = []
        if not self.rate_plan:
            problems.append("no rate_plan: a rate plan is needed to activate a new SIM")
        if not self.imei and not self.device_sku:
            problems.append("no imei: an IMEI (or a device_sku) is needed to activate a new SIM")
        return problems

    def to_inputs(self) -> dict[str, Any]:
        """A JSON-able dict for the Pulumi resource inputs: only what fleet.yaml declares, so that a
        reviewer's diff shows nothing but account fields.  An unmanaged field is absent (Pulumi drops
        ``None`` inputs anyway); "no usage limit" is :data:`NO_LIMIT`."""
        inputs: dict[str, Any] = {"iccid": self.iccid, "name": self.name, "state": self.state}
        for key in _OPTIONAL_STRINGS:
            if getattr(self, key) is not None:
                inputs[key] = getattr(self, key)
        if self.notes:
            inputs["notes"] = dict(self.notes)
        if self.usage_limit is not UNMANAGED:
            inputs["usage_limit"] = self.usage_limit.to_dict() if self.usage_limit else NO_LIMIT
        if self.ignore_changes:
            inputs["ignore_changes"] = list(self.ignore_changes)
        return inputs

    @classmethod
    def from_inputs(cls, d: Mapping[str, Any]) -> DesiredSim:
        """The inverse of :meth:`to_inputs`; tolerates numbers that come back as floats, and reads the
        inputs of earlier versions (which listed the managed fields in ``managed`` and wrote ``None``
        for "no limit").  ``group`` is not carried, so it is ``None``."""
        if not isinstance(d, Mapping) or not d.get("iccid"):
            raise ValueError(f"not the inputs of a SIM (no iccid): {d!r}")
        legacy = d.get("managed")
        managed = set(legacy) if legacy is not None else None

        def declared(key: str) -> bool:
            return key in managed if managed is not None else d.get(key) is not None

        strings = {k: (d.get(k) if declared(k) else None) for k in _OPTIONAL_STRINGS}
        notes = {k: v for k, v in (d.get("notes") or {}).items() if managed is None or f"notes.{k}" in managed}
        usage: UsageLimit | None | Unmanaged = UNMANAGED
        if (managed is not None and "usage_limit" in managed) or (managed is None and "usage_limit" in d):
            raw = d.get("usage_limit")
            usage = UsageLimit.from_dict(raw) if isinstance(raw, Mapping) else None
        return cls(
            iccid=d["iccid"],
            name=d.get("name") or d["iccid"],
            state=d.get("state") or DEFAULT_STATE,
            notes=notes,
            usage_limit=usage,
            ignore_changes=tuple(d.get("ignore_changes") or ()),
            **strings,
        )


@dataclass(frozen=True)
class Policy:
    """``policy:`` of fleet.yaml.  Exactly one of ``max_changes`` (a number of SIMs) and
    ``max_changes_percent`` (of the fleet) is set; ``Policy()`` is the default: retain, 10%."""

    on_remove: str = DEFAULT_ON_REMOVE
    max_changes: int | None = None
    max_changes_percent: float | None = None

    def __post_init__(self) -> None:
        if self.on_remove not in ON_REMOVE_CHOICES:
            raise ValueError(f"on_remove must be one of {', '.join(ON_REMOVE_CHOICES)}, not {self.on_remove!r}")
        if self.max_changes is not None:
            if isinstance(self.max_changes, bool) or not isinstance(self.max_changes, int) or self.max_changes < 0:
                raise ValueError(f"max_changes must be a non-negative integer, not {self.max_changes!r}")
            object.__setattr__(self, "max_changes_percent", None)
        elif self.max_changes_percent is None:
            object.__setattr__(self, "max_changes_percent", float(DEFAULT_MAX_CHANGES.rstrip("%")))
        elif not 0 <= self.max_changes_percent <= 100:
            raise ValueError(f"max_changes_percent must be between 0 and 100, not {self.max_changes_percent!r}")

    def limit_for(self, fleet_size: int) -> int:
        """The most SIMs that one run may suspend or remove, for a fleet of ``fleet_size`` SIMs
        (a percentage is rounded up: 10% of 5 SIMs is 1)."""
        if self.max_changes is not None:
            return self.max_changes
        assert self.max_changes_percent is not None
        return math.ceil(Fraction(str(self.max_changes_percent)) * max(fleet_size, 0) / 100)

    def describe(self) -> str:
        """``"5 SIMs"`` or ``"10% of the fleet"``, for messages."""
        if self.max_changes is not None:
            return f"{self.max_changes} SIM{'' if self.max_changes == 1 else 's'}"
        return f"{self.max_changes_percent:g}% of the fleet"


class _Written(NamedTuple):
    kind: str  # "rate_plan" | "username"
    value: str
    location: Location
    field: str


@dataclass
class FleetSpec:
    """The whole validated fleet.  ``sims`` are in file order (fleet.yaml, then fleet.d files in name
    order); ``files`` are the files read, fleet.yaml first."""

    sims: list[DesiredSim]
    policy: Policy = field(default_factory=Policy)
    path: str = "fleet.yaml"
    files: list[str] = field(default_factory=list)
    version: int = 1
    _locations: dict[str, dict[str, Location]] = field(default_factory=dict, repr=False, compare=False)
    _written: list[_Written] = field(default_factory=list, repr=False, compare=False)
    by_iccid: dict[str, DesiredSim] = field(init=False, repr=False, compare=False)
    by_name: dict[str, DesiredSim] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.by_iccid = {sim.iccid: sim for sim in self.sims}
        self.by_name = {sim.name: sim for sim in self.sims}

    def __len__(self) -> int:
        return len(self.sims)

    def source_of(self, iccid: str, field: str | None = None) -> Location:
        """Where the SIM (``field=None``) or one of its fields is written: the value's position, in
        the SIM, its group or defaults, wherever the effective value comes from (through anchors and
        merge keys: where it is literally written).  Fields: iccid, imei, name, group, state,
        rate_plan, region_code, device_sku, cost_center, notes, notes.note1 (or note1), usage_limit,
        usage_limit.kb_limit, usage_limit.usernames[0] …  An unmanaged field gives the SIM's position.
        Raises KeyError for an ICCID not in the fleet."""
        locations = self._locations[iccid]
        if not field:
            return locations[""]
        if field in NOTE_FIELDS:
            field = f"notes.{field}"
        while field:
            if field in locations:
                return locations[field]
            field = re.sub(r"(\.[^.\[]*|\[[^\]]*\])$", "", field) if re.search(r"[.\[]", field) else ""
        return locations[""]


# --------------------------------------------------------------------------------------------------
# Loading


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


@dataclass
class _Doc:
    file: str
    kind: str  # "main" | "fragment"
    lines: list[str]
    root: Any = None
    data: Any = None


def load_fleet(path: str | os.PathLike[str] = "fleet.yaml") -> FleetSpec:
    """Read, validate and normalise fleet.yaml and its fleet.d files.  Raises :class:`FleetError`
    listing every problem found (and never anything else for bad input)."""
    return _Loader(os.fspath(path)).load()


class _Loader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.issues: list[tuple[int, Issue]] = []  # (file order, issue)
        self.docs: list[_Doc] = []
        self.file_order: dict[str, int] = {}
        self.unreadable = False  # fleet.yaml itself could not be read: nothing else is worth checking
        self.unread: list[str] = []  # files not read or not parsed: what they declare is unknown

    # ---- issues
    def _add(self, doc: _Doc | str, location: Location, fieldpath: str, message: str) -> None:
        file = doc if isinstance(doc, str) else doc.file
        self.issues.append(
            (self.file_order.setdefault(file, len(self.file_order)), Issue.at(location, fieldpath, message))
        )

    def _add_at(self, doc: _Doc, path: tuple, mode: str, message: str) -> None:
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
            raise FleetError(self._sorted_issues())
        for display, kind in self._fleet_d_files():
            self._read(display, kind)
        for doc in self.docs:
            self._validate_schema(doc)
        groups = self._collect_groups()
        sims = self._collect_sims(groups)
        if self.issues:
            raise FleetError(self._sorted_issues())
        return self._build(groups, sims)

    def _fleet_d_files(self) -> Iterator[tuple[str, str]]:
        stem = os.path.splitext(os.path.basename(self.path))[0]
        display_dir = os.path.join(os.path.dirname(self.path), f"{stem}.d")
        directory = Path(display_dir)
        if not directory.exists():
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
            if entry.name.startswith(".") or not entry.is_file():
                continue
            display = os.path.join(display_dir, entry.name)
            if entry.name.endswith(".yaml"):
                yield display, "fragment"
            elif entry.name.endswith(".yml"):
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
        try:
            doc.root = _yaml().load(text)
        except DuplicateKeyError as e:
            # Report every duplicate key (with both places), then carry on with the first values so
            # that the rest of the file is checked too.
            duplicates = _duplicate_keys(text)
            if not duplicates:
                self._yaml_error(doc, e)
                return None
            for path, (line, col), (first_line, first_col) in duplicates:
                key = path[-1]
                what = f"group '{key}'" if len(path) == 2 and path[0] == "groups" else f"key '{key}'"
                self._add(
                    doc,
                    Location(display, line + 1, col + 1),
                    _fmt_path(path),
                    f"{what} is declared twice in this file: first at {display}:{first_line + 1}:{first_col + 1}",
                )
            try:
                doc.root = _yaml(allow_duplicate_keys=True).load(text)
            except YAMLError as e2:
                self._yaml_error(doc, e2)
                return None
        except YAMLError as e:
            self._yaml_error(doc, e)
            return None
        except RecursionError:
            self._add(doc, Location(display, 1, 1), "", "invalid YAML: nested too deeply")
            self.unread.append(display)
            return None
        if doc.root is None:
            what = "version: 1 and sims" if kind == "main" else "groups or sims"
            self._add(doc, _first_content(doc.lines, display), "", f"file is empty: expected {what}")
            return None
        doc.data = self._plain(doc, doc.root, (), {}, set())
        self.docs.append(doc)
        return doc

    def _read_text(self, display: str, kind: str) -> str | None:
        here = Location(display, 1, 1)
        try:
            raw = Path(display).read_bytes()
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

    def _yaml_error(self, doc: _Doc, e: YAMLError) -> None:
        self.unread.append(doc.file)
        if isinstance(e, MarkedYAMLError):
            mark = e.problem_mark or e.context_mark
            message = e.problem or e.context or "invalid YAML"
            if e.context and e.problem and e.context_mark is not None:
                message += f" ({e.context} at line {e.context_mark.line + 1}, column {e.context_mark.column + 1})"
            loc = Location(doc.file, mark.line + 1, mark.column + 1) if mark else Location(doc.file, 1, 1)
            self._add(doc, loc, "", f"invalid YAML: {message}")
        else:
            self._add(doc, Location(doc.file, 1, 1), "", f"invalid YAML: {e}")

    def _plain(self, doc: _Doc, node: Any, path: tuple, memo: dict[int, Any], stack: set[int]) -> Any:
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
        # Best-first (jsonschema's relevance) within one instance path, paths in document order.
        errors = sorted(_validator(doc.kind).iter_errors(doc.data), key=relevance, reverse=True)
        errors.sort(key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])
        for error in errors:
            for path, mode, message in _explain(error, doc):
                self._add_at(doc, path, mode, message)

    # ---- cross-file checks
    def _collect_groups(self) -> dict[str, tuple[_Doc, dict]]:
        groups: dict[str, tuple[_Doc, dict]] = {}
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

    def _collect_sims(self, groups: dict[str, tuple[_Doc, dict]]) -> list[tuple[_Doc, int, dict]]:
        sims: list[tuple[_Doc, int, dict]] = []
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
    def _build(self, groups: dict[str, tuple[_Doc, dict]], sims: list[tuple[_Doc, int, dict]]) -> FleetSpec:
        main = self.docs[0]
        defaults = main.data.get("defaults") or {}
        written: list[_Written] = []
        seen_written: set[tuple[str, Location, str]] = set()

        def note_written(doc: _Doc, path: tuple, body: dict) -> None:
            entries: list[tuple[str, str, tuple]] = []
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
            layers: list[tuple[_Doc, tuple, dict]] = [(doc, base, sim)]
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
            for key in ("state", "rate_plan", "region_code", "device_sku", "cost_center", "usage_limit",
                        "ignore_changes"):
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


# --------------------------------------------------------------------------------------------------
# jsonschema errors → messages

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


def _show(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return f"a date ({value.isoformat()})"
    return type(value).__name__


def _source_token(doc: _Doc, path: tuple) -> str | None:
    loc = _locate(doc, path, "value")
    if not 0 < loc.line <= len(doc.lines):
        return None
    match = re.match(r"[^\s#,\]\}]+", doc.lines[loc.line - 1][loc.column - 1 :])
    return match.group(0) if match else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _context(path: tuple, kind: str) -> str:
    if not path:
        return "fleet.d files" if kind == "fragment" else "fleet.yaml"
    if path == ("defaults",):
        return "defaults"
    if len(path) == 2 and path[0] == "groups":
        return f"group '{path[1]}'"
    if len(path) == 2 and path[0] == "sims":
        return "a SIM"
    return _fmt_path(path)


def _explain(error: ValidationError, doc: _Doc) -> list[tuple[tuple, str, str]]:
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


def _simple_message(error: ValidationError, doc: _Doc, path: tuple) -> str:
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
            shown = (
                instance if isinstance(instance, int | float) and not isinstance(instance, bool) else _show(instance)
            )
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
        return f"must be at most {value}, not {_show(instance)}"
    if validator == "minItems":
        return f"must have at least {value} item{'s' if value != 1 else ''}"
    return error.message


# --------------------------------------------------------------------------------------------------
# Checks against the live account, and the CLI entry point


def validate_against_account(fleet: FleetSpec, rate_plans: set[str], usernames: set[str]) -> list[Issue]:
    """Rate plans that ``v2/rate_plans`` does not list and usernames that ``v2/users`` does not list
    (the API silently ignores bad usernames; we do not).  Every value written anywhere is checked
    (defaults, groups even if unused, SIMs), once per place it is written, and each Issue points at
    that place; in file order, like load_fleet's issues."""
    issues = []
    for written in fleet._written:
        if written.kind == "rate_plan" and written.value not in rate_plans:
            known = (
                f"the account's rate plans: {', '.join(sorted(rate_plans)[:10])}{', …' if len(rate_plans) > 10 else ''}"
                if rate_plans
                else "the account has no rate plans"
            )
            issues.append(
                Issue.at(
                    written.location,
                    written.field,
                    f"unknown rate plan {_show(written.value)}{_did_you_mean(written.value, rate_plans)}: "
                    f"v2/rate_plans does not list it ({known})",
                )
            )
        elif written.kind == "username" and written.value not in usernames:
            issues.append(
                Issue.at(
                    written.location,
                    written.field,
                    f"unknown user {_show(written.value)}{_did_you_mean(written.value, usernames)}: "
                    "v2/users does not list it (the API would silently ignore it and nobody would be alerted)",
                )
            )
    order = {file: n for n, file in enumerate(fleet.files)}
    return sorted(issues, key=lambda i: (order.get(i.file, len(order)), i.line, i.column))


def main_validate(path: str = "fleet.yaml", out: TextIO | None = None) -> int:
    """``lattigo-fleet validate [FILE]``: print "FILE: N SIMs OK" and return 0, or print every issue
    (one per line, file:line:column: field: message) and return 1."""
    out = out if out is not None else sys.stdout
    try:
        fleet = load_fleet(path)
    except FleetError as e:
        for issue in e.issues:
            print(issue, file=out)
        return 1
    n = len(fleet.sims)
    print(f"{path}: {n} SIM{'' if n == 1 else 's'} OK", file=out)
    return 0
