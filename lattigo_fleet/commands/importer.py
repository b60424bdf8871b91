"""``lattigo-fleet import``: the live account → fleet.yaml, so that the first ``pulumi up`` sends nothing.

The flow, one function per step: :func:`~lattigo_fleet.commands.credentials.read_credentials` (the stack's
config, else the environment),
:func:`read_account` (the client's paged bulk read, with progress on stderr), :func:`live_sims` (device
objects → :class:`LiveSim`, in fleet.yaml's terms), :class:`Selection` (``--cost-center``, ``--state``,
``--iccid-file``), :func:`layout` (what goes to ``defaults``, ``groups`` and each SIM entry), then either
:func:`render_new` (a fresh file) or :func:`merge_into` (an existing one, round trip: comments, order and
anchors kept), and :func:`write_validated` (temp file → :func:`~lattigo_fleet.fleetfile.load_fleet` → move in
place), and last :func:`calls_at_next_up`, which asks the planner what ``pulumi up`` would send.

Decisions:

- Declared for every SIM: ``iccid`` and ``imei`` (quoted), ``state`` and ``cost_center`` (``""`` for a SIM
  without one: the planner reads a missing cost center as ``""``, so declaring it sends nothing and a later
  one set in the portal shows as drift).  A pending state is declared where it settles
  (:data:`lattigo_fleet.planner.SETTLES_TO`).
- Notes: only the non-empty note fields are declared; an empty note stays unmanaged, so that a note
  written later in the portal is not wiped by the next ``pulumi up``.  A note longer than the schema's
  100 characters cannot be declared: it stays unmanaged and is reported.
- Not declared, because the API cannot read them: ``usage_limit`` (declaring one, even ``null``, sends it
  at the next ``pulumi up``) and the activation fields (``rate_plan``, ``region_code``, ``device_sku``).
  The file's header says so.  ``name`` is left out: the device name is a number, the ICCID is the default.
- ``defaults`` holds the most common state and cost center; each other cost center shared by two SIMs or
  more gets a group (``--no-groups``: per SIM instead).  SIMs are sorted by ICCID.
- ``--merge`` adds the SIMs the file (with its fleet.d) does not declare yet, placed with the file's own
  defaults and groups; it never changes a declared value unless ``--overwrite``, and reports each
  difference it left alone with where it is written.

Over 400 lines: the round-trip merge into an existing file (comments, anchors, fleet.d) is most of it, and it
shares its layout rules with the fresh file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from lattigo_fleet.client.models import LiveDevice, as_live_device
from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure, fleet_error_line
from lattigo_fleet.commands.credentials import api_failure_line, read_credentials
from lattigo_fleet.fleetfile import DEFAULT_STATE, NOTE_FIELDS, STATES, DesiredSim, FleetError, FleetSpec, load_fleet
from lattigo_fleet.fleetfile.schema import iccid_pattern, note_max_length
from lattigo_fleet.planner import SETTLES_TO, plan_sim
from lattigo_fleet.terminal.progress import progress_bar
from lattigo_fleet.vocabulary import SIM_STATES

__all__ = [
    "ImportFailure",
    "Layout",
    "LiveSim",
    "Selection",
    "add_arguments",
    "calls_at_next_up",
    "layout",
    "live_sims",
    "main",
    "merge_into",
    "read_account",
    "render_new",
    "run",
    "write_validated",
]

_IMEI = re.compile(r"^[0-9]{15,16}$")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Fields a group may set for :func:`layout` to place a SIM in it: the ones import reads from the account.
_PLACEABLE = ("state", "cost_center")

HEADER = """\
Imported from the Lattigo account at {endpoint} by `lattigo-fleet import` on {day}: {count} SIM(s).
Each SIM is declared as the account has it, so `pulumi up` on this file sends nothing.
Not declared, because the API cannot read them:
  - usage_limit: monthly usage limits are write-only; unmanaged here. Declaring one (even
    `usage_limit: null`) sends it to the SIM at the next `pulumi up`.
  - rate_plan (and region_code, device_sku): they cannot be read from an activated SIM. A rate_plan is
    needed only to activate new SIMs: add one to the SIMs you add (or to their group).
Empty notes are left unmanaged; cost_center "" means: no cost center."""


class ImportFailure(CommandFailure):
    """What stops an import, as one line for the user (never a traceback)."""


COMMAND = Command(
    "import", error_prefix="error: ", json_errors=True, interrupted="interrupted, nothing written", interrupted_code=130
)


# --------------------------------------------------------------------------------------------------
# The account, in fleet.yaml's terms


@dataclass(frozen=True)
class LiveSim:
    """One SIM of the account as fleet.yaml would declare it.  ``notes`` holds the non-empty note fields;
    ``cost_center`` is ``""`` when the SIM has none; ``state`` is where a pending state settles."""

    iccid: str
    imei: str | None
    state: str
    live_state: str
    cost_center: str
    notes: dict[str, str]
    device: LiveDevice = field(repr=False, compare=False)  # as the API listed it, for the planner


@dataclass(frozen=True)
class Skipped:
    iccid: str
    reason: str


def live_sims(devices: Iterable[Mapping[str, Any]]) -> tuple[list[LiveSim], list[Skipped], list[str]]:
    """Device objects → (SIMs sorted by ICCID, SIMs that cannot be declared and why, warnings)."""
    sims: list[LiveSim] = []
    skipped: list[Skipped] = []
    warnings: list[str] = []
    for device in devices:
        iccid = str(device.get("iccid") or "")
        if not iccid_pattern().match(iccid):
            skipped.append(Skipped(iccid or "?", "its ICCID is not 19 or 20 digits"))
            continue
        live_state = str(device.get("state") or "")
        state = SETTLES_TO.get(live_state, live_state)
        if state not in STATES:
            skipped.append(Skipped(iccid, f"its state {live_state or 'none'!r} cannot be declared"))
            continue
        imei = str(device.get("imei") or "") or None
        if imei is not None and not _IMEI.match(imei):
            warnings.append(f"{iccid}: IMEI {imei!r} is not 15 or 16 digits: not declared")
            imei = None
        notes = {}
        for name in NOTE_FIELDS:
            value = device.get(name)
            if value in (None, ""):
                continue
            value = str(value)
            if len(value) > note_max_length():
                warnings.append(f"{iccid}: {name} is longer than {note_max_length()} characters: left unmanaged")
                continue
            notes[name] = value
        cost_center = device.get("cost_center")
        sims.append(
            LiveSim(
                iccid,
                imei,
                state,
                live_state,
                "" if cost_center is None else str(cost_center),
                notes,
                as_live_device(device),
            )
        )
    sims.sort(key=lambda s: s.iccid)
    return sims, skipped, warnings


@dataclass(frozen=True)
class Selection:
    """Which SIMs to import: every one by default.  ``state`` matches the live state or where it settles
    (``--state active`` takes the SIMs being activated too)."""

    cost_centers: tuple[str, ...] = ()
    state: str | None = None
    iccids: frozenset[str] | None = None

    def matches(self, sim: LiveSim) -> bool:
        if self.cost_centers and sim.cost_center not in self.cost_centers:
            return False
        if self.state and self.state not in (sim.state, sim.live_state):
            return False
        return self.iccids is None or sim.iccid in self.iccids

    def describe(self) -> str:
        parts = []
        if self.cost_centers:
            parts.append("cost center " + " or ".join(repr(c) for c in self.cost_centers))
        if self.state:
            parts.append(f"state {self.state}")
        if self.iccids is not None:
            parts.append(f"{len(self.iccids)} ICCID(s) of the ICCID file")
        return ", ".join(parts) or "every SIM"


def read_iccid_file(path: str) -> frozenset[str]:
    """One ICCID per line; blank lines and ``#`` comments are skipped.  A bad line is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ImportFailure(f"cannot read the ICCID file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ImportFailure(f"cannot read the ICCID file {path}: it is not UTF-8 text") from None
    found = set()
    for number, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip().strip("\"'")
        if not value:
            continue
        if not iccid_pattern().match(value):
            raise ImportFailure(f"{path}:{number}: {value!r} is not an ICCID (19 or 20 digits)")
        found.add(value)
    return frozenset(found)


# --------------------------------------------------------------------------------------------------
# Where each value goes: defaults, groups, the SIM


@dataclass
class Layout:
    """What to write: ``defaults`` and ``new_groups`` (the file's own, for a merge, are not repeated) and one
    entry per SIM (plain dicts, keys in the order written)."""

    defaults: dict[str, Any]
    new_groups: dict[str, dict[str, Any]]
    entries: list[dict[str, Any]]
    group_sizes: Counter[str] = field(default_factory=Counter)


def _most_common(values: Iterable[str], order: Sequence[str] = ()) -> str | None:
    counts = Counter(values)
    if not counts:
        return None
    rank = {v: i for i, v in enumerate(order)}
    return min(counts, key=lambda v: (-counts[v], rank.get(v, len(rank)), v))


def group_name(cost_center: str, taken: Iterable[str]) -> str:
    """A group name for a cost center: lower case, other characters as '-', unique among ``taken``."""
    base = re.sub(r"[^a-z0-9._-]+", "-", cost_center.lower()).strip("-._")[:90] or "no-cost-center"
    taken = set(taken)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def layout(
    sims: Sequence[LiveSim],
    *,
    defaults: Mapping[str, Any] | None = None,
    groups: Mapping[str, Mapping[str, Any]] | None = None,
    use_groups: bool = True,
) -> Layout:
    """Place ``sims``.  A fresh import passes no ``defaults``: the most common state and cost center become
    them.  A merge passes the file's ``defaults`` and ``groups`` (plain data): a group that sets only
    state and/or cost center, all equal to a SIM's, takes that SIM.  With ``use_groups``, a cost center that
    is not the default and has no such group gets a new one when two SIMs or more share it."""
    fresh = defaults is None
    if fresh:
        defaults = {}
        state = _most_common((s.state for s in sims), STATES)
        cost_center = _most_common(s.cost_center for s in sims)
        if state is not None:
            defaults["state"] = state
        if cost_center is not None:
            defaults["cost_center"] = cost_center
    defaults = dict(defaults or {})
    base_notes = dict(defaults.get("notes") or {})
    groups = {name: dict(body or {}) for name, body in (groups or {}).items()}
    placeable = {
        name: body
        for name, body in groups.items()
        if body and set(body) <= set(_PLACEABLE) and all(isinstance(v, str) for v in body.values())
    }
    new_groups: dict[str, dict[str, Any]] = {}
    if use_groups:
        default_cc = defaults.get("cost_center")
        counts = Counter(s.cost_center for s in sims if s.cost_center != default_cc and s.cost_center)
        covered = {body.get("cost_center") for body in placeable.values() if set(body) == {"cost_center"}}
        for cost_center in sorted(counts):
            if counts[cost_center] >= 2 and cost_center not in covered:
                name = group_name(cost_center, [*groups, *new_groups])
                new_groups[name] = {"cost_center": cost_center}
        placeable.update(new_groups)

    def fits(body: Mapping[str, Any], sim: LiveSim) -> bool:
        return all(getattr(sim, key) == value for key, value in body.items())

    entries = []
    sizes: Counter[str] = Counter()
    for sim in sims:
        entry: dict[str, Any] = {"iccid": sim.iccid}
        if sim.imei:
            entry["imei"] = sim.imei
        candidates = [name for name, body in placeable.items() if fits(body, sim)]
        effective = {"state": defaults.get("state", DEFAULT_STATE), "cost_center": defaults.get("cost_center")}
        if candidates:
            name = min(candidates, key=lambda n: (-len(placeable[n]), n))
            entry["group"] = name
            sizes[name] += 1
            effective.update(placeable[name])
        if sim.state != effective["state"]:
            entry["state"] = sim.state
        if sim.cost_center != effective["cost_center"]:
            entry["cost_center"] = sim.cost_center
        notes = {}
        for name in NOTE_FIELDS:
            value = sim.notes.get(name, "")
            declared = base_notes.get(name)
            if (declared is None and value) or (declared is not None and declared != value):
                notes[name] = value
        if notes:
            entry["notes"] = notes
        entries.append(entry)
    new_groups = {name: body for name, body in new_groups.items() if sizes[name]}
    return Layout(defaults if fresh else {}, new_groups, entries, sizes)


# --------------------------------------------------------------------------------------------------
# YAML


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _detect_indent(yaml: YAML, text: str) -> None:
    """Write list items indented the way the file already does (``- `` under ``sims:`` or two spaces in)."""
    match = re.search(r"^sims:[^\n]*\n(?:[ \t]*(?:#[^\n]*)?\n)*( *)- ", text, re.M)
    if match:
        offset = len(match.group(1))
        yaml.indent(mapping=2, sequence=offset + 2, offset=offset)


# A string that reads back as itself when written plain, in block and in flow context alike. Anything else
# (a leading `? ` or `: `, an indicator, a colon or hash inside, outer spaces) is written double-quoted: the
# emitter's own check misses some of them in flow mappings, and the written file would not parse.
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_(][A-Za-z0-9 _./()+-]*[A-Za-z0-9_./()+-]|[A-Za-z0-9_]")


def _scalar(value: Any) -> Any:
    if isinstance(value, str) and value and not _PLAIN_SAFE.fullmatch(value):
        return DoubleQuotedScalarString(value)
    return value


def _node(entry: Mapping[str, Any]) -> CommentedMap:
    node = CommentedMap()
    for key, value in entry.items():
        if key in ("iccid", "imei"):
            node[key] = DoubleQuotedScalarString(value)
        elif key == "notes":
            notes = CommentedMap((k, _scalar(v)) for k, v in value.items())
            if sum(len(k) + len(v) + 4 for k, v in value.items()) <= 90:
                notes.fa.set_flow_style()
            node[key] = notes
        else:
            node[key] = _scalar(value)
    return node


def _flow(body: Mapping[str, Any]) -> CommentedMap:
    node = CommentedMap((k, _scalar(v)) for k, v in body.items())
    node.fa.set_flow_style()
    return node


def render_new(result: Layout, *, endpoint: str, day: date | None = None) -> str:
    """A new fleet.yaml: the header, ``version``, ``defaults``, ``groups`` (if any), ``sims``."""
    root = CommentedMap()
    root["version"] = 1
    if result.defaults:
        root["defaults"] = _flow(result.defaults)
    if result.new_groups:
        groups = CommentedMap()
        for name, body in result.new_groups.items():
            groups[name] = _flow(body)
        root["groups"] = groups
        root.yaml_set_comment_before_after_key("groups", before="\nOne group per cost center shared by several SIMs")
    root["sims"] = CommentedSeq(_node(e) for e in result.entries)
    root.yaml_set_comment_before_after_key("sims", before="\n")
    header = HEADER.format(endpoint=endpoint, day=(day or date.today()).isoformat(), count=len(result.entries))
    root.yaml_set_start_comment(header)
    root.yaml_set_comment_before_after_key("version", before="\n")
    out = io.StringIO()
    _yaml().dump(root, out)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# Merge into an existing file


@dataclass(frozen=True)
class Difference:
    """A declared value that is not the account's."""

    iccid: str
    field: str
    declared: Any
    live: Any
    where: str  # file:line:column of the declared value
    applied: bool  # --overwrite wrote the account's value on the SIM

    def to_dict(self) -> dict[str, Any]:
        return {
            "iccid": self.iccid,
            "field": self.field,
            "declared": self.declared,
            "live": self.live,
            "where": self.where,
            "overwritten": self.applied,
        }


@dataclass
class MergeResult:
    text: str
    added: list[str]
    already: list[str]
    differences: list[Difference]
    new_groups: dict[str, dict[str, Any]]


def differences(desired: DesiredSim, sim: LiveSim) -> list[tuple[str, Any, Any]]:
    """(field, declared, live) for each declared value the account does not have (``ignore_changes``
    fields excepted, as the program does)."""
    ignored = set(desired.ignore_changes)
    found: list[tuple[str, Any, Any]] = []
    if desired.imei is not None and sim.imei and desired.imei != sim.imei:
        found.append(("imei", desired.imei, sim.imei))
    if "state" not in ignored and desired.state != sim.state:
        found.append(("state", desired.state, sim.state))
    if "cost_center" not in ignored and desired.cost_center is not None and desired.cost_center != sim.cost_center:
        found.append(("cost_center", desired.cost_center, sim.cost_center))
    if "notes" not in ignored:
        for name, value in desired.notes.items():
            if value != sim.notes.get(name, ""):
                found.append((f"notes.{name}", value, sim.notes.get(name, "")))
    return found


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _fleet_d_groups(path: Path) -> dict[str, dict[str, Any]]:
    directory = path.parent / f"{path.stem}.d"
    found: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return found
    for file in sorted(directory.glob("*.yaml")):
        try:
            data = YAML(typ="safe").load(file.read_text(encoding="utf-8-sig"))
        except (OSError, YAMLError, UnicodeDecodeError):
            continue  # load_fleet has accepted the directory; nothing here is worth failing on
        if isinstance(data, dict) and isinstance(data.get("groups"), dict):
            found.update({str(k): dict(v or {}) for k, v in data["groups"].items()})
    return found


def _set_own(sim_node: CommentedMap, fieldname: str, value: Any) -> None:
    """Set a SIM's own value (which wins over its group and defaults), never an anchor that others share."""
    if fieldname.startswith("notes."):
        note = fieldname.split(".", 1)[1]
        notes = sim_node.get("notes")
        if not isinstance(notes, CommentedMap) or notes.anchor.value is not None or "notes" not in sim_node.lc.data:
            copy = CommentedMap(notes.items() if isinstance(notes, Mapping) else ())
            if isinstance(notes, CommentedMap) and notes.fa.flow_style():
                copy.fa.set_flow_style()
            notes = copy
            sim_node["notes"] = notes
        notes[note] = _scalar(value)
    elif fieldname == "imei":
        sim_node["imei"] = DoubleQuotedScalarString(value)
    else:
        sim_node[fieldname] = _scalar(value)


def merge_into(
    text: str,
    path: Path,
    spec: FleetSpec,
    sims: Sequence[LiveSim],
    *,
    overwrite: bool = False,
    use_groups: bool = True,
) -> MergeResult:
    """``text`` (fleet.yaml as read, ``spec`` its loaded form) with the SIMs of ``sims`` it does not declare
    added, and (``overwrite``) the differences of those it does set on the SIM itself."""
    yaml = _yaml()
    _detect_indent(yaml, text)
    root = yaml.load(text)
    display = str(path)
    own_sims = root.get("sims")
    nodes = {str(n.get("iccid")): n for n in own_sims or () if isinstance(n, Mapping)}

    new = [s for s in sims if s.iccid not in spec.by_iccid]
    already = [s for s in sims if s.iccid in spec.by_iccid]
    found: list[Difference] = []
    for sim in already:
        desired = spec.by_iccid[sim.iccid]
        for fieldname, declared, live in differences(desired, sim):
            where = spec.source_of(sim.iccid, fieldname)
            node = nodes.get(sim.iccid)
            applied = bool(overwrite and node is not None and spec.source_of(sim.iccid).file == display)
            if applied and isinstance(node, CommentedMap):
                _set_own(node, fieldname, live)
            found.append(Difference(sim.iccid, fieldname, declared, live, str(where), applied))

    groups = {**_fleet_d_groups(path), **_plain(root.get("groups") or {})}
    placed = layout(new, defaults=_plain(root.get("defaults") or {}), groups=groups, use_groups=use_groups)
    if placed.new_groups:
        if not isinstance(root.get("groups"), CommentedMap):
            position = list(root).index("sims") if "sims" in root else len(root)
            if "groups" in root:
                del root["groups"]
                position = list(root).index("sims") if "sims" in root else len(root)
            root.insert(position, "groups", CommentedMap())
        for name, body in placed.new_groups.items():
            root["groups"][name] = _flow(body)
    if placed.entries:
        if not isinstance(own_sims, CommentedSeq):
            if "sims" in root:
                del root["sims"]
            root["sims"] = own_sims = CommentedSeq()
        for entry in placed.entries:
            own_sims.append(_node(entry))
    out = io.StringIO()
    yaml.dump(root, out)
    return MergeResult(out.getvalue(), [s.iccid for s in new], [s.iccid for s in already], found, placed.new_groups)


# --------------------------------------------------------------------------------------------------
# Writing, checked


def write_validated(target: Path, text: str) -> FleetSpec:
    """Write ``text`` to ``target`` only if :func:`load_fleet` accepts it (with the fleet.d beside the
    target): it is written to a temporary directory beside it, loaded, then moved in place."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=".lattigo-import-", dir=parent))
    except OSError as e:
        raise ImportFailure(f"cannot write in {parent}: {e.strerror or e}") from None
    try:
        tmp = tmpdir / target.name
        tmp.write_text(text, encoding="utf-8")
        fleet_d = parent / f"{target.stem}.d"
        if fleet_d.exists():
            os.symlink(fleet_d.resolve(), tmpdir / fleet_d.name)
        try:
            # The fleet.d link leads to the target's own directory: its files are inside the fleet's.
            spec = load_fleet(tmp, root=parent)
        except FleetError as e:
            first = str(e.issues[0]).replace(str(tmp), str(target)) if e.issues else str(e)
            more = f" (and {len(e.issues) - 1} more)" if len(e.issues) > 1 else ""
            raise ImportFailure(f"the file to write is not valid, nothing written: {first}{more}") from None
        os.replace(tmp, target)
        return spec
    except OSError as e:
        raise ImportFailure(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def calls_at_next_up(spec: FleetSpec, sims: Sequence[LiveSim]) -> dict[str, list[str]]:
    """ICCID → the calls the planner would make for it at the next ``pulumi up`` (only SIMs with some).
    A usage limit declared in the file's defaults or groups is sent once to a SIM being adopted."""
    calls = {}
    for sim in sims:
        desired = spec.by_iccid.get(sim.iccid)
        if desired is None:
            continue
        kinds = plan_sim(desired, sim.device).kinds
        if kinds:
            calls[sim.iccid] = kinds
    return calls


# --------------------------------------------------------------------------------------------------
# The account


class Progress:
    """The SIMs read so far, as a bar on a terminal (:func:`~lattigo_fleet.terminal.progress.progress_bar`); and
    at the end, on any stream, one line: how many, in how many requests, how long."""

    def __init__(self, stream: TextIO, label: str = "reading the account", show: bool | None = None) -> None:
        self.stream = stream
        self.label = label
        self.count = 0
        self.started = time.monotonic()
        self.bar = progress_bar(label, stream=stream, show=show)

    def update(self, count: int) -> None:
        self.bar.update(count - self.count)
        self.count = count

    def close(self, requests: int | None = None) -> None:
        self.bar.close()
        took = time.monotonic() - self.started
        how = f" in {requests} request(s)" if requests else ""
        self.stream.write(f"{self.label}: {self.count} SIM(s){how}, {took:.1f} s\n")
        self.stream.flush()


def read_account(client: Any, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every SIM of the account with its fields: the client's paged bulk read (``devices(details=True)``,
    what :meth:`LattigoClient.snapshot` reads), counted on ``progress`` as the pages arrive."""
    found: dict[str, dict[str, Any]] = {}
    devices: Iterator[Any] = iter(client.devices(details=True))
    for device in devices:
        if isinstance(device, Mapping) and device.get("iccid"):
            found[str(device["iccid"])] = dict(device)
            if progress is not None:
                progress.update(len(found))
    return list(found.values())


# --------------------------------------------------------------------------------------------------
# The command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read the live account and write fleet.yaml declaring its SIMs as they are, so that `pulumi up` "
        "on it sends nothing. Usage limits and rate plans cannot be read and are not declared."
    )
    parser.add_argument("--stack", help="read the credentials from this stack's config (else LATTIGO_* variables)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="the fleet file to write (default: the stack's lattigo-fleet:fleetFile, or fleet.yaml)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--merge",
        action="store_true",
        help="add the SIMs the file does not declare yet, keeping its comments, order and anchors",
    )
    mode.add_argument("--force", action="store_true", help="replace an existing file with a fresh import")
    parser.add_argument(
        "--overwrite", action="store_true", help="with --merge: set the account's value where the file declares another"
    )
    parser.add_argument(
        "--cost-center",
        action="append",
        default=[],
        metavar="NAME",
        help='only SIMs of this cost center (repeatable; "" for none)',
    )
    parser.add_argument(
        "--state",
        choices=SIM_STATES,
        help="only SIMs in this state (a pending state counts as where it settles)",
    )
    parser.add_argument("--iccid-file", metavar="FILE", help="only the ICCIDs listed in FILE, one per line")
    parser.add_argument(
        "--no-groups",
        action="store_true",
        help="declare every cost center other than the default on its SIMs, not in groups",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def run(
    args: argparse.Namespace,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    client_factory: Callable[..., Any] | None = None,
) -> int:
    """``lattigo-fleet import``: 0 on success, 1 with one line on stderr otherwise."""
    out, err = stdout or sys.stdout, stderr or sys.stderr

    def work() -> int:
        report = _import(args, err, env, client_factory)
        out.write(json.dumps(report, indent=2) + "\n" if args.json else _readable(report))
        return 0

    return COMMAND.run(work, json_output=args.json, stdout=out, stderr=err)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lattigo-fleet import")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _import(
    args: argparse.Namespace, stderr: TextIO, env: Mapping[str, str] | None, client_factory: Callable[..., Any] | None
) -> dict[str, Any]:
    if args.overwrite and not args.merge:
        raise ImportFailure("--overwrite goes with --merge")
    selection = Selection(
        tuple(args.cost_center), args.state, read_iccid_file(args.iccid_file) if args.iccid_file else None
    )
    credentials = read_credentials(args.stack, env=env, failure=ImportFailure)
    endpoint, stack_file = credentials.endpoint, credentials.fleet_file
    target = Path(args.output or stack_file or "fleet.yaml")
    exists = target.exists()
    if exists and target.is_dir():
        raise ImportFailure(f"{target} is a directory")
    if exists and not (args.merge or args.force):
        raise ImportFailure(f"{target} exists: --merge to add what is new, --force to replace it")
    existing: tuple[str, FleetSpec] | None = None
    if exists and args.merge:
        try:
            existing = (target.read_text(encoding="utf-8-sig"), load_fleet(target))
        except FleetError as e:
            raise ImportFailure(f"cannot merge into {target}, it is not valid: {fleet_error_line(e, target)}") from None
        except OSError as e:
            raise ImportFailure(f"cannot read {target}: {e.strerror or e}") from None

    from lattigo_fleet.client import LattigoClient, LattigoError

    factory = client_factory or LattigoClient
    progress = Progress(stderr)
    try:
        with factory(endpoint, credentials.key_name, credentials.api_key, max_retries=2, timeout=30.0) as client:
            devices = read_account(client, progress)
            requests = getattr(getattr(client, "stats", None), "total_requests", None)
    except LattigoError as e:
        raise ImportFailure(api_failure_line(e, endpoint)) from None
    except ValueError as e:
        raise ImportFailure(f"bad endpoint {endpoint!r}: {e}") from None
    finally:
        progress.bar.close()  # before the error or the summary line: a bar never stays behind on the terminal
    progress.close(requests)

    every, skipped, warnings = live_sims(devices)
    sims = [s for s in every if selection.matches(s)]
    not_found = sorted(selection.iccids - {s.iccid for s in every}) if selection.iccids is not None else []
    report: dict[str, Any] = {
        "ok": True,
        "file": str(target),
        "endpoint": endpoint,
        "account_sims": len(every),
        "selection": selection.describe(),
        "selected": len(sims),
        "skipped": [{"iccid": s.iccid, "reason": s.reason} for s in skipped],
        "warnings": warnings,
        "not_in_account": not_found,
    }
    if existing is None:
        if not sims:
            raise ImportFailure(f"no SIM of the account matches {selection.describe()}: nothing written")
        placed = layout(sims, use_groups=not args.no_groups)
        text = render_new(placed, endpoint=endpoint)
        report.update(
            mode="replaced" if exists else "created",
            added=[s.iccid for s in sims],
            already_declared=0,
            defaults=placed.defaults,
            groups={n: dict(b, sims=placed.group_sizes[n]) for n, b in placed.new_groups.items()},
            differences=[],
        )
    else:
        merged = merge_into(
            existing[0], target, existing[1], sims, overwrite=args.overwrite, use_groups=not args.no_groups
        )
        text = merged.text
        report.update(
            mode="merged",
            added=merged.added,
            already_declared=len(merged.already),
            groups={n: dict(b) for n, b in merged.new_groups.items()},
            differences=[d.to_dict() for d in merged.differences],
        )
    spec = write_validated(target, text)
    calls = calls_at_next_up(spec, sims)
    report["states"] = dict(Counter(s.state for s in sims))
    report["calls_at_next_up"] = calls
    return report


def _readable(report: dict[str, Any]) -> str:
    lines = []
    added, file = len(report["added"]), report["file"]
    if report["mode"] == "merged":
        lines.append(
            f"merged into {file}: {added} SIM(s) added, {report['already_declared']} already declared "
            f"({report['selection']} of {report['account_sims']} in the account)"
        )
    else:
        states = ", ".join(f"{n} {s}" for s, n in sorted(report["states"].items(), key=lambda t: STATES.index(t[0])))
        lines.append(
            f"wrote {file}: {added} SIM(s) ({states}) of {report['account_sims']} in the account"
            + (f", {report['selection']}" if report["selection"] != "every SIM" else "")
        )
        if report.get("defaults"):
            lines.append("  defaults: " + ", ".join(f"{k} {v!r}" for k, v in report["defaults"].items()))
    if report["groups"]:
        lines.append(
            "  new groups: "
            + ", ".join(
                f"{n} (cost_center {b['cost_center']!r}" + (f", {b['sims']} SIMs)" if "sims" in b else ")")
                for n, b in report["groups"].items()
            )
        )
    for item in report["skipped"]:
        lines.append(f"  not imported: {item['iccid']}: {item['reason']}")
    for warning in report["warnings"]:
        lines.append(f"  warning: {warning}")
    if report["not_in_account"]:
        shown = ", ".join(report["not_in_account"][:5])
        more = len(report["not_in_account"]) - 5
        lines.append(f"  not in the account: {shown}" + (f" and {more} more" if more > 0 else ""))
    diffs = report["differences"]
    kept = [d for d in diffs if not d["overwritten"]]
    done = [d for d in diffs if d["overwritten"]]
    if kept:
        lines.append(
            f"  left alone: {len(kept)} declared value(s) differ from the account (--overwrite to take the account's):"
        )
        for d in kept:
            lines.append(
                f"    {d['where']}: {d['iccid']} {d['field']}: declared {d['declared']!r}, "
                f"the account has {d['live']!r}"
            )
    for d in done:
        lines.append(f"  overwritten: {d['iccid']} {d['field']}: {d['declared']!r} -> {d['live']!r}")
    calls = report["calls_at_next_up"]
    if calls:
        kinds = Counter(k for ks in calls.values() for k in ks)
        lines.append(
            f"  `pulumi up` would still send calls for {len(calls)} SIM(s): "
            + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        )
    else:
        lines.append("  `pulumi up` on it sends nothing for these SIMs (usage limits and rate plans not declared)")
    return "\n".join(lines) + "\n"
