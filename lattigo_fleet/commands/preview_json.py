"""`pulumi preview --json`, read: steps, ops, URNs, detailed diffs and diagnostics, shared by `plan` and `drift`.

What the document looks like (Pulumi v3, with this project's provider host, which returns detailed diffs):

- ``steps``: one per resource and operation. ``op`` is ``create``, ``update``, ``delete``, ``same``, ``replace``
  (...) and, in a preview run with ``--refresh`` (``drift``), a ``refresh`` step for every resource already in
  the stack; a resource that does not change then has its refresh step alone (no ``same`` step is listed, but
  the stack's). Without ``--refresh`` an unchanged resource has a ``same`` step. ``oldState``/``newState`` hold
  ``inputs`` and ``outputs``.
  Of a refresh step both states are the state as last applied; the live values appear as the ``oldState`` of
  the resource's *next* step (an ``update``'s old inputs are the refreshed ones; without ``--refresh``, the
  ones last applied, while its diff is against the live account: providers/sim.py). So "what changed in the
  account" is the refresh step's old value against the update step's old value.
- ``detailedDiff``: ``{path: {"kind": "update"|"add"|"delete"|..., "inputDiff": true}}``; a path is
  Pulumi's property path (``cost_center``, ``notes.note1``, ``a["b.c"]``, ``list[0]``). ``diffReasons``: the
  top-level keys that differ.
- ``changeSummary``: ``{op: count}`` over every resource (the stack and the FleetGuard too); ``duration``: how
  long the preview took, in nanoseconds (a Go ``time.Duration``).
- ``diagnostics``: ``{"severity", "message", "urn"?}``; the message starts with ``warning: ``/``error: `` and
  ends in a newline. A preview refused by a provider (the blast-radius guard) lists its error here and stops
  planning: the steps before it are all the document holds.

Nothing here knows about SIMs beyond :func:`is_sim`/:func:`is_guard`; `plan` and `drift` give the steps
their meaning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lattigo_fleet.commands import pulumi_cli
from lattigo_fleet.commands.common import CommandFailure

SIM_TYPE = "lattigo:Sim"
GUARD_TYPE = "lattigo:FleetGuard"
# The refusal of the blast-radius guard starts with this (lattigo_fleet.guard.refusal).
GUARD_REFUSAL = "policy.max_changes:"
# Pulumi's marker of a secret value in state (`{SECRET_SIG: ..., "value": ...}`).
SECRET_SIG = "4dabf18193072939515e22adb298388d"


class PreviewError(CommandFailure):
    """The preview could not be run or read; the message is one line for a user."""


class Missing:
    """A property that is absent (not declared, or not in the account)."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = Missing()


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # error | warning | info | info#err | debug
    message: str  # without the "warning: " prefix and the trailing newline
    urn: str = ""

    @property
    def resource(self) -> str:
        return urn_name(self.urn) if self.urn else ""


@dataclass(frozen=True)
class Step:
    op: str
    urn: str
    old_inputs: Mapping[str, Any] | None = None
    new_inputs: Mapping[str, Any] | None = None
    old_outputs: Mapping[str, Any] | None = None
    new_outputs: Mapping[str, Any] | None = None
    detailed_diff: Mapping[str, str] = field(default_factory=dict)  # path -> kind
    diff_reasons: tuple[str, ...] = ()
    input_diffs: frozenset[str] = frozenset()  # the paths of the detailed diff whose `inputDiff` is true

    @property
    def type(self) -> str:
        return urn_type(self.urn)

    @property
    def name(self) -> str:
        return urn_name(self.urn)

    @property
    def changed_paths(self) -> list[str]:
        """The paths that change: the detailed diff's, or the diff reasons' when the provider gave none."""
        return sorted(self.detailed_diff) if self.detailed_diff else sorted(self.diff_reasons)


@dataclass
class Preview:
    steps: list[Step]
    diagnostics: list[Diagnostic]
    change_summary: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    duration_ns: int = 0  # how long the preview took, as Pulumi measured it

    @property
    def duration_seconds(self) -> int:
        """In whole seconds, as Pulumi's summary event counts them (`durationSeconds`)."""
        return self.duration_ns // 1_000_000_000

    @property
    def stack(self) -> str:
        return next((urn_stack(s.urn) for s in self.steps), "")

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def refusal(self) -> Diagnostic | None:
        """The blast-radius guard's refusal, if the preview was refused."""
        return next((d for d in self.errors if GUARD_REFUSAL in d.message), None)

    def refreshed(self) -> dict[str, Step]:
        """URN -> its refresh step (the state as last applied, before the refresh)."""
        return {s.urn: s for s in self.steps if s.op == "refresh"}

    def planned(self, type_suffix: str = "") -> list[Step]:
        """The steps that are not refreshes, of resources whose type ends with `type_suffix`."""
        return [s for s in self.steps if s.op != "refresh" and s.type.endswith(type_suffix)]


# --- URNs --------------------------------------------------------------------------------------------------


def urn_name(urn: str) -> str:
    """`urn:pulumi:stack::project::type::name` -> name (a name may itself hold `::`)."""
    parts = urn.split("::", 3)
    return parts[3] if len(parts) == 4 else urn


def urn_type(urn: str) -> str:
    parts = urn.split("::", 3)
    return parts[2].rsplit("$", 1)[-1] if len(parts) == 4 else ""


def urn_stack(urn: str) -> str:
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.count(":") >= 2 else ""


def is_sim(step: Step) -> bool:
    return step.type.endswith(SIM_TYPE)


def is_guard(step: Step) -> bool:
    return step.type.endswith(GUARD_TYPE)


# --- property paths ----------------------------------------------------------------------------------------

_SEGMENT = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[\]]+)')


def split_path(path: str) -> list[str | int]:
    """Pulumi's property path -> keys: `notes.note1` -> ["notes", "note1"], `a["b.c"][0]` -> ["a", "b.c", 0]."""
    keys: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if not match or match.end() == pos:
            raise ValueError(f"not a property path: {path!r}")
        index, quoted, plain = match.groups()
        if index is not None:
            keys.append(int(index))
        elif quoted is not None:
            keys.append(json.loads(f'"{quoted}"'))
        else:
            keys.append(plain)
        pos = match.end()
    return keys


def value_at(props: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a property path, or MISSING."""
    value: Any = props if props is not None else MISSING
    try:
        keys = split_path(path)
    except ValueError:
        return MISSING
    for key in keys:
        if isinstance(key, int) and isinstance(value, list) and 0 <= key < len(value):
            value = value[key]
        elif isinstance(key, str) and isinstance(value, Mapping) and key in value:
            value = value[key]
        else:
            return MISSING
    return unsecret(value)


def unsecret(value: Any) -> Any:
    """A secret value stays hidden: `[secret]`, never its plaintext."""
    if isinstance(value, Mapping) and SECRET_SIG in value:
        return "[secret]"
    return value


# --- reading -----------------------------------------------------------------------------------------------


def _state(step: Mapping[str, Any], key: str, part: str) -> Mapping[str, Any] | None:
    state = step.get(key)
    if not isinstance(state, Mapping):
        return None
    props = state.get(part)
    return props if isinstance(props, Mapping) else ({} if part == "inputs" else None)


def _diagnostic(raw: Mapping[str, Any]) -> Diagnostic:
    severity = str(raw.get("severity") or "info")
    message = str(raw.get("message") or "").strip()
    for prefix in ("error: ", "warning: "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return Diagnostic(severity, message.strip(), str(raw.get("urn") or ""))


def parse_preview(text: str, source: str = "the preview") -> Preview:
    """The JSON document that `pulumi preview --json` prints. Raises PreviewError (one line) if it is not one."""
    stripped = text.strip()
    if not stripped:
        raise PreviewError(f"{source} is empty: expected the output of `pulumi preview --json`")
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise PreviewError(
            f"{source} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): expected "
            "the output of `pulumi preview --json`"
        ) from None
    if not isinstance(doc, Mapping) or not ({"steps", "diagnostics", "changeSummary"} & set(doc)):
        raise PreviewError(
            f"{source} is JSON but not the output of `pulumi preview --json` (no steps, diagnostics or changeSummary)"
        )
    steps = []
    for raw in doc.get("steps") or []:
        if not isinstance(raw, Mapping) or not raw.get("urn"):
            continue
        detailed = raw.get("detailedDiff") or {}
        steps.append(
            Step(
                op=str(raw.get("op") or ""),
                urn=str(raw["urn"]),
                old_inputs=_state(raw, "oldState", "inputs"),
                new_inputs=_state(raw, "newState", "inputs"),
                old_outputs=_state(raw, "oldState", "outputs"),
                new_outputs=_state(raw, "newState", "outputs"),
                detailed_diff={
                    str(path): str((d or {}).get("kind") or "update") if isinstance(d, Mapping) else "update"
                    for path, d in detailed.items()
                }
                if isinstance(detailed, Mapping)
                else {},
                diff_reasons=tuple(str(r) for r in raw.get("diffReasons") or ()),
                input_diffs=frozenset(
                    str(path) for path, d in detailed.items() if isinstance(d, Mapping) and d.get("inputDiff")
                )
                if isinstance(detailed, Mapping)
                else frozenset(),
            )
        )
    diagnostics = [_diagnostic(d) for d in doc.get("diagnostics") or [] if isinstance(d, Mapping)]
    summary: Mapping[str, Any] = doc["changeSummary"] if isinstance(doc.get("changeSummary"), Mapping) else {}
    config: Mapping[str, Any] = doc["config"] if isinstance(doc.get("config"), Mapping) else {}
    duration = doc.get("duration")
    return Preview(
        steps,
        [d for d in diagnostics if d.severity != "debug"],
        {str(k): int(v) for k, v in summary.items() if isinstance(v, int)},
        dict(config),
        duration if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0 else 0,
    )


def read_preview_file(path: str, stdin: Any = None) -> Preview:
    """`--from FILE` (`-`: standard input)."""
    if path == "-":
        import sys

        return parse_preview((stdin or sys.stdin).read(), "standard input")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PreviewError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PreviewError(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_preview(text, path)


def run_preview(
    extra: Sequence[str] = (), *, stack: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[Preview, int]:
    """Run `pulumi preview --json` and read it: (preview, pulumi's exit code). A preview that fails after
    printing its document (errors in diagnostics, or --expect-no-changes) is returned, not raised."""
    proc = pulumi_cli.run(["preview", *extra], stack=stack, cwd=cwd, json=True, env=env, failure=PreviewError)
    if not proc.stdout.strip():
        raise pulumi_cli.failed("pulumi preview", proc, PreviewError)
    try:
        return parse_preview(proc.stdout, "the output of `pulumi preview --json`"), proc.returncode
    except PreviewError:
        if proc.returncode:
            raise pulumi_cli.failed("pulumi preview", proc, PreviewError) from None
        raise


def first_error(preview: Preview) -> str:
    """The one line that says why a preview failed (the program's "N problem(s) found" count aside)."""
    errors = [d.message for d in preview.errors]
    specific = [m for m in errors if "problem(s) found before any change" not in m] or errors
    if not specific:
        return ""
    line = specific[0].splitlines()[0]
    return line + (f" (and {len(specific) - 1} more error(s))" if len(specific) > 1 else "")
