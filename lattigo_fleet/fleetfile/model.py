"""The vocabulary of the spec: the field constants, where a problem is (:class:`Location`,
:class:`Issue`, :class:`FleetError`) and the desired state itself (:class:`UsageLimit`,
:class:`DesiredSim`, :class:`Policy`, :class:`FleetSpec`).

Plain data with its own checks: no YAML, no JSON Schema, no files.  Everything else in the package
imports from here; this module imports nothing from the package but the API's words (vocabulary.py).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final, NamedTuple, Required, TypedDict, cast

from lattigo_fleet.vocabulary import ACTIVE, NOTE_FIELDS, SUSPENDED, SUSPENDED_NO_BILLING

STATES: Final = (ACTIVE, SUSPENDED, SUSPENDED_NO_BILLING)  # what a fleet file may declare (the settled ones)
DEFAULT_STATE: Final = ACTIVE
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
    "state",
    "rate_plan",
    "region_code",
    "device_sku",
    "cost_center",
    "notes",
    "usage_limit",
    "ignore_changes",
)
SIM_ONLY_FIELDS: Final = ("iccid", "imei", "name", "group")
_OPTIONAL_STRINGS: Final = ("imei", "rate_plan", "region_code", "device_sku", "cost_center")


class UsageLimitInputs(TypedDict):
    kb_limit: int
    action: str
    usernames: list[str]


class SimInputs(TypedDict, total=False):
    """One SIM as a Pulumi resource's inputs (DesiredSim.to_inputs): what fleet.yaml declares, JSON-able. A
    field fleet.yaml leaves unmanaged is absent; ``origin`` is the provider's own record (providers/sim.py)."""

    iccid: Required[str]
    name: Required[str]
    state: Required[str]
    imei: str
    rate_plan: str
    region_code: str
    device_sku: str
    cost_center: str
    notes: dict[str, str]
    usage_limit: UsageLimitInputs | str  # NO_LIMIT: "no usage limit"
    ignore_changes: list[str]
    origin: str


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
        kb: Any = self.kb_limit
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

    def to_dict(self) -> UsageLimitInputs:
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

    def to_inputs(self) -> SimInputs:
        """A JSON-able dict for the Pulumi resource inputs: only what fleet.yaml declares, so that a
        reviewer's diff shows nothing but account fields.  An unmanaged field is absent (Pulumi drops
        ``None`` inputs anyway); "no usage limit" is :data:`NO_LIMIT`."""
        declared = {key: getattr(self, key) for key in _OPTIONAL_STRINGS if getattr(self, key) is not None}
        inputs = cast(SimInputs, {"iccid": self.iccid, "name": self.name, "state": self.state, **declared})
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
    # Set by the fast path of load_fleet: reads the files again, with positions, the first time one is needed.
    _reload: Callable[[], FleetSpec] | None = field(default=None, repr=False, compare=False)
    by_iccid: dict[str, DesiredSim] = field(init=False, repr=False, compare=False)
    by_name: dict[str, DesiredSim] = field(init=False, repr=False, compare=False)
    _file_index: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.by_iccid = {sim.iccid: sim for sim in self.sims}
        self.by_name = {sim.name: sim for sim in self.sims}

    def __len__(self) -> int:
        return len(self.sims)

    def located(self) -> FleetSpec:
        """This fleet with the positions of everything in its files (read again if the fast path had none)."""
        if self._reload is not None:
            positioned = self._reload()
            self._locations, self._written, self._reload = positioned._locations, positioned._written, None
        return self

    def sim_path(self, iccid: str, field: str | None = None) -> str:
        """The SIM's path in its own file, for messages: `sims[0].cost_center` for the first SIM of a fleet.d
        file, whatever fleet.yaml and earlier files hold (the index counts the SIMs of that file only)."""
        if self._file_index is None:
            counts: dict[str, int] = {}
            index: dict[str, int] = {}
            for sim in self.sims:
                file = self.source_of(sim.iccid).file
                index[sim.iccid] = counts.get(file, 0)
                counts[file] = index[sim.iccid] + 1
            self._file_index = index
        return f"sims[{self._file_index[iccid]}]" + (f".{field}" if field else "")

    def source_of(self, iccid: str, field: str | None = None) -> Location:
        """Where the SIM (``field=None``) or one of its fields is written: the value's position, in
        the SIM, its group or defaults, wherever the effective value comes from (through anchors and
        merge keys: where it is literally written).  Fields: iccid, imei, name, group, state,
        rate_plan, region_code, device_sku, cost_center, notes, notes.note1 (or note1), usage_limit,
        usage_limit.kb_limit, usage_limit.usernames[0] …  An unmanaged field gives the SIM's position.
        Raises KeyError for an ICCID not in the fleet."""
        locations = self.located()._locations[iccid]
        if not field:
            return locations[""]
        if field in NOTE_FIELDS:
            field = f"notes.{field}"
        while field:
            if field in locations:
                return locations[field]
            field = re.sub(r"(\.[^.\[]*|\[[^\]]*\])$", "", field) if re.search(r"[.\[]", field) else ""
        return locations[""]
