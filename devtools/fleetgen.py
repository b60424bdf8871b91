"""Generated fleet files for the property-based suite (tests/fleetfile/test_loader_properties.py) and the
longer fuzz run (bench/fuzz_loader.py): valid fleets built from hypothesis strategies, with the SIMs
they declare; hostile mutations of them; and the check every outcome of ``load_fleet`` must pass.

A valid fleet mixes block and flow styles, groups, defaults, anchors and merge keys; its expected SIMs
are computed here by the precedence rule of the package docstring (SIM, then group, then defaults).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from lattigo_fleet.fleetfile import (
    DEFAULT_STATE,
    IGNORABLE_FIELDS,
    NOTE_FIELDS,
    STATES,
    UNMANAGED,
    USAGE_ACTIONS,
    DesiredSim,
    FleetError,
    FleetSpec,
    UsageLimit,
    load_fleet,
)

KB_MAX = 2**53 - 1
SHARED = ("state", "rate_plan", "region_code", "device_sku", "cost_center", "usage_limit", "ignore_changes")
# Characters a double-quoted YAML string carries unchanged (no controls, line separators, BOM, surrogates).
SAFE_CHARS = st.characters(exclude_categories=("Cc", "Cs", "Cn", "Co", "Zl", "Zp"), exclude_characters="\ufeff")
NAMES = st.from_regex(r"[a-z][a-z0-9._-]{0,12}", fullmatch=True)


@dataclass
class Fleet:
    text: str
    sims: list[DesiredSim]


def _settings() -> st.SearchStrategy[dict[str, Any]]:
    limits = st.one_of(
        st.none(),
        st.builds(
            lambda kb, action, users: {"kb_limit": kb, "action": action, "usernames": users},
            st.one_of(st.integers(1, 10**6), st.integers(1, KB_MAX)),
            st.sampled_from(USAGE_ACTIONS),
            st.lists(NAMES, min_size=1, max_size=3, unique=True),
        ),
    )
    words = st.text(SAFE_CHARS, min_size=1, max_size=20)
    return st.fixed_dictionaries(
        {},
        optional={
            "state": st.sampled_from(STATES),
            "rate_plan": words,
            "region_code": st.from_regex(r"[0-9]{5}", fullmatch=True),
            "device_sku": words,
            "cost_center": st.text(SAFE_CHARS, max_size=20),
            "notes": st.dictionaries(st.sampled_from(NOTE_FIELDS), st.text(SAFE_CHARS, max_size=100), max_size=4),
            "usage_limit": limits,
            "ignore_changes": st.lists(st.sampled_from(IGNORABLE_FIELDS), unique=True, max_size=3),
        },
    )


def _dump(value: Any) -> str:
    """A value in YAML flow style: JSON, which is YAML 1.2."""
    return json.dumps(value, ensure_ascii=False)


def _block(mapping: dict[str, Any], indent: str) -> str:
    return "".join(f"{indent}{key}: {_dump(value)}\n" for key, value in mapping.items())


def _expected(sim: dict[str, Any], group: dict[str, Any], defaults: dict[str, Any]) -> DesiredSim:
    layers = [sim, group, defaults]
    values = {}
    for key in SHARED:
        for layer in layers:
            if key in layer:
                values[key] = layer[key]
                break
    notes: dict[str, str] = {}
    for layer in layers:
        for key, value in (layer.get("notes") or {}).items():
            notes.setdefault(key, value)
    usage = values.get("usage_limit", UNMANAGED)
    if isinstance(usage, dict):
        usage = UsageLimit(usage["kb_limit"], usage["action"], tuple(usage["usernames"]))
    return DesiredSim(
        iccid=sim["iccid"],
        imei=sim.get("imei"),
        name=sim.get("name") or sim["iccid"],
        group=sim.get("group"),
        state=values.get("state", DEFAULT_STATE),
        rate_plan=values.get("rate_plan"),
        region_code=values.get("region_code"),
        device_sku=values.get("device_sku"),
        cost_center=values.get("cost_center"),
        notes=notes,
        usage_limit=usage,
        ignore_changes=tuple(values.get("ignore_changes") or ()),
    )


@st.composite
def fleets(draw: st.DrawFn, max_sims: int = 8) -> Fleet:
    """A valid fleet.yaml and the SIMs it declares."""
    defaults = draw(st.one_of(st.none(), _settings()))
    groups = draw(st.dictionaries(NAMES, _settings(), max_size=3))
    count = draw(st.integers(0, max_sims))
    iccids = draw(st.lists(st.from_regex(r"[0-9]{19,20}", fullmatch=True), min_size=count, max_size=count, unique=True))
    imeis = draw(st.lists(st.from_regex(r"[0-9]{15,16}", fullmatch=True), min_size=count, max_size=count, unique=True))
    names = draw(st.lists(NAMES, min_size=count, max_size=count, unique=True))
    lines = ["# generated\n", "version: 1\n"]
    if defaults is not None:
        lines.append("defaults:\n" + _block(defaults, "  ") if defaults else "defaults: {}\n")
    if groups:
        lines.append("groups:\n")
        for name, body in groups.items():
            key = _dump(name)  # quoted: a group may be called "null" or "true"
            lines.append(
                f"  {key}: {_dump(body)}\n" if draw(st.booleans()) or not body else f"  {key}:\n" + _block(body, "    ")
            )
    sims, expected, anchors = [], [], []
    for i in range(count):
        sim: dict[str, Any] = {"iccid": iccids[i], **draw(_settings())}
        if draw(st.booleans()):
            sim["imei"] = imeis[i]
        if draw(st.booleans()):
            sim["name"] = names[i]
        # bool(...) and draw(...): with the list or dict itself on the left, mypy would infer the draw from it
        if bool(groups) and draw(st.booleans()):
            sim["group"] = draw(st.sampled_from(sorted(groups)))
        expected.append(_expected(sim, groups[sim["group"]] if "group" in sim else {}, defaults or {}))
        # Some of the SIM's own fields come from an anchored mapping merged with <<.
        shared = [k for k in sim if k != "iccid" and draw(st.booleans())]
        if bool(shared) and draw(st.booleans()):
            anchors.append(f"x-s{i}: &s{i} {_dump({k: sim[k] for k in shared})}\n")
            own = {k: v for k, v in sim.items() if k not in shared}
            sims.append(f"  - {{<<: *s{i}, " + _dump(own)[1:] + "\n")
        elif draw(st.booleans()):
            sims.append(f"  - {_dump(sim)}\n")
        else:
            first, *rest = sim.items()
            sims.append(f"  - {first[0]}: {_dump(first[1])}\n" + _block(dict(rest), "    "))
    lines += anchors
    lines.append("sims:\n" + "".join(sims) if sims else "sims: []\n")
    if draw(st.booleans()):
        lines.append("policy: " + _dump({"on_remove": draw(st.sampled_from(["retain", "suspend"]))}) + "\n")
    return Fleet("".join(lines), expected)


# --------------------------------------------------------------------------------------------------
# Mutations

CONTROL = [chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), 127, *range(0x80, 0x85), *range(0x86, 0xA0)]]
CONTROL += ["\ufffe", "\uffff"]
PUNCTUATION = list(" \t\n:-{}[],&*<>!|\"'#%@`?0123456789abcxyz")


def _laughs(levels: int, width: int) -> str:
    names = "abcdefghijklmnop"
    out = 'x-la: &la ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip(names, names[1:levels], strict=False):
        out += f"x-l{name}: &l{name} [" + ",".join([f"*l{prev}"] * width) + "]\n"
    return out


@st.composite
def mutations(draw: st.DrawFn, text: str) -> bytes:
    """``text`` damaged one to three times: random bytes, control characters, truncation, deep
    nesting, aliases (bombs, undefined, duplicate anchors, long text repeated), huge numbers, duplicate keys,
    punctuation, lone UTF-16 surrogates spelled by escapes."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "bytes",
                    "control",
                    "truncate",
                    "nesting",
                    "bomb",
                    "alias",
                    "anchor",
                    "number",
                    "duplicate",
                    "punctuation",
                    "surrogate",
                    "long-alias",
                ]
            )
        )
        lines = text.splitlines(keepends=True) or [""]
        at = draw(st.integers(0, len(text)))
        line_at = draw(st.integers(0, len(lines)))
        if kind == "bytes":
            raw = bytearray(text.encode("utf-8"))
            for _ in range(draw(st.integers(1, 4))):
                pos = draw(st.integers(0, len(raw)))
                raw[pos : pos + draw(st.integers(0, 1))] = draw(st.binary(min_size=1, max_size=3))
            return bytes(raw)
        if kind == "control":
            text = text[:at] + draw(st.sampled_from(CONTROL)) + text[at:]
        elif kind == "truncate":
            text = text[:at]
        elif kind == "nesting":
            depth = draw(st.integers(50, 3000))
            if draw(st.booleans()):
                insert = "x-deep: " + "[" * depth + "]" * draw(st.sampled_from([depth, 0])) + "\n"
            else:
                insert = "x-deep:\n" + "".join(" " * i + "-\n" for i in range(1, min(depth, 400)))
            lines.insert(line_at, insert)
            text = "".join(lines)
        elif kind == "bomb":
            lines.insert(line_at, _laughs(draw(st.integers(2, 10)), draw(st.integers(2, 12))))
            text = "".join(lines)
        elif kind == "alias":
            anchors = re.findall(r"&([\w-]+)", text) or ["nope"]
            value = f"*{draw(st.sampled_from(anchors))}"
            text = text[:at] + draw(st.sampled_from([value, f"{value} ", f"<<: {value}\n", f"[{value}]"])) + text[at:]
        elif kind == "anchor":
            anchors = re.findall(r"&([\w-]+)", text) or ["a"]
            lines.insert(line_at, f"x-dup{line_at}: &{draw(st.sampled_from(anchors))} {{state: suspended}}\n")
            text = "".join(lines)
        elif kind == "number":
            digits = draw(
                st.sampled_from(["9" * 4301, "1" * 6000, str(2**53 + 1), str(2**63), "0x" + "f" * 4000, "1e999"])
            )
            spans = [m.span() for m in re.finditer(r"\d+", text)]
            if bool(spans) and draw(st.booleans()):
                start, end = draw(st.sampled_from(spans))
                text = text[:start] + digits + text[end:]
            else:
                lines.insert(line_at, f"x-n: {digits}\n")
                text = "".join(lines)
        elif kind == "surrogate":
            escape = draw(st.sampled_from(["\\ud800", "\\udcff", "\\udfff", "\\U0000d83d"]))
            quoted = [m.span() for m in re.finditer(r'"[^"\n]*"', text)]
            if bool(quoted) and draw(st.booleans()):
                start, end = draw(st.sampled_from(quoted))
                text = text[: end - 1] + escape + text[end - 1 :]
            else:
                lines.insert(line_at, f'x-s: "truck{escape}"\n')
                text = "".join(lines)
        elif kind == "long-alias":
            size, copies = draw(st.sampled_from([(10_000, 2_000), (100_000, 200), (1_000, 20_000)]))
            lines.insert(line_at, f"x-long: &long {'y' * size}\nx-copies: [{', '.join(['*long'] * copies)}]\n")
            text = "".join(lines)
        elif kind == "duplicate":
            if lines[0]:
                lines.insert(line_at, draw(st.sampled_from(lines)))
            text = "".join(lines)
        else:
            text = text[:at] + draw(st.sampled_from(PUNCTUATION)) + text[at:]
    return text.encode("utf-8")


# --------------------------------------------------------------------------------------------------
# The check


def _lines(raw: bytes) -> list[str] | list[bytes]:
    """The file's lines as the loader counts them: YAML's line breaks (\\n, \\r\\n, a lone \\r) for
    UTF-8 text, bytes between \\n for a file that is not UTF-8 (its position is a byte offset)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        parts: list[bytes] = raw.split(b"\n")
        return parts[:-1] if parts[-1] == b"" else parts
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines[-1] == "" else lines


def outcome_problems(path: Path, raw: bytes) -> tuple[FleetSpec | None, list[str]]:
    """Load ``path`` (whose bytes are ``raw``): the fleet (or None) and what is wrong with the outcome
    (empty: a FleetSpec, or a FleetError whose every issue is inside the file with a clean message).
    Any other exception propagates: that is the traceback the loader must never give."""
    try:
        return load_fleet(path), []
    except FleetError as e:
        issues = e.issues
    lines = _lines(raw)
    problems = [] if issues else ["a FleetError without issues"]
    for issue in issues:
        where = f"{issue}"
        if issue.file != str(path):
            problems.append(f"{where}: names another file")
        if not 1 <= issue.line <= len(lines) + 1:
            problems.append(f"{where}: line outside the file's {len(lines)} lines")
        elif issue.column < 1 or issue.column > (len(lines[issue.line - 1]) + 1 if issue.line <= len(lines) else 1):
            problems.append(f"{where}: column outside line {issue.line}")
        if "<unicode string>" in issue.message or "<byte string>" in issue.message or "<file>" in issue.message:
            problems.append(f"{where}: ruamel's stream name in the message")
        if not issue.message or "\n" in issue.message:
            problems.append(f"{where}: the message is not one line")
        try:
            where.encode("utf-8")  # printed by validate and posted by plan: it must be text any output carries
        except UnicodeEncodeError:
            problems.append(f"{where!a}: the message cannot be printed as UTF-8")
    return None, problems
