"""Device operations: ``lattigo-fleet sms send|log``, ``locate``, ``reports``, ``calamp messages|events|last``,
``upload-imeis``: the read and imperative device endpoints of the Lattigo API, one call of the client each.

The flow of every command, one function per step:

- :func:`open_session`: the credentials (``--stack``: the stack's config through ``pulumi config --json
  --show-secrets``; else ``LATTIGO_ENDPOINT``/``LATTIGO_KEY_NAME``/``LATTIGO_API_KEY``, as ``import`` reads
  them), a :class:`~lattigo_fleet.client.LattigoClient`, and the fleet file that names SIMs (``--fleet``, else
  the stack's ``lattigo-fleet:fleetFile``, else ``fleet.yaml`` when it exists).
- :func:`resolve`: each argument (an ICCID, or the ``name`` of a SIM in the fleet file) → a :class:`Device`
  (ICCID, the API's device name, state), read from the account before anything is sent: per SIM
  (``GET v2/devices/:iccid?id_type=iccid``) for a few, the paged snapshot for more. A name or ICCID that is not
  there stops the command with one line, and nothing is sent.
- :func:`confirm` for every command that sends (SMS, a charged carrier locate, an IMEI upload): a prompt
  on a terminal; ``--yes`` skips it; with no terminal and no ``--yes`` the command refuses (it never hangs).
- one client call per device (:func:`each_device`); a device whose call fails gets its own error and the
  others go on (after a connection or credential failure the rest are not tried and say so).
- a table per command for people, ``--json`` for machines; exit 0 when every device succeeded, 1 otherwise
  (errors on one line on stderr, never a traceback).

Endpoints that accept ``id_type=iccid`` are called by ICCID; ``send_sms`` takes device names only, so the
names come from :func:`resolve`.

Over 400 lines: eight small commands that share their resolution, confirmation and table code; splitting them would
repeat that code or scatter it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure, fail, load_fleet_file
from lattigo_fleet.commands.credentials import api_failure_line, read_credentials
from lattigo_fleet.fleetfile.schema import iccid_pattern
from lattigo_fleet.suggest import did_you_mean
from lattigo_fleet.terminal.table import table
from lattigo_fleet.vocabulary import SIM_STATES

__all__ = [
    "Device",
    "DeviceFailure",
    "Outcome",
    "Session",
    "add_parsers",
    "confirm",
    "each_device",
    "main",
    "open_session",
    "parse_when",
    "render_table",
    "resolve",
]

#: Default window of the CalAmp listings, whose dates the API requires: the last 7 days (UTC), today included.
CALAMP_DAYS = 7
#: Longest cell in a table (message bodies, carrier answers); --json has everything.
CELL = 72


class DeviceFailure(CommandFailure):
    """What stops a device command, as one line for the user."""


class NotConfirmed(Exception):
    """The user answered no to the confirmation prompt."""


# --------------------------------------------------------------------------------------------------
# Devices


@dataclass(frozen=True)
class Device:
    """A SIM as the commands address it: its ICCID, the API's ``device_name``, its fleet.yaml ``name`` ("" when
    the fleet file does not declare it) and its state in the account."""

    iccid: str
    device_name: str
    name: str = ""
    state: str = ""

    @property
    def label(self) -> str:
        return self.name if self.name and self.name != self.iccid else self.iccid

    def to_json(self) -> dict[str, Any]:
        return {"iccid": self.iccid, "name": self.name or None, "device_name": self.device_name, "state": self.state}


@dataclass
class Outcome:
    """One device's answer: ``value`` (what the endpoint returned) when ``ok``, else ``error`` (the API's words)."""

    device: Device
    ok: bool
    value: Any = None
    error: str = ""

    def to_json(self, key: str = "answer") -> dict[str, Any]:
        out = self.device.to_json()
        out["ok"] = self.ok
        if self.ok:
            out[key] = self.value
        else:
            out["error"] = self.error
        return out


@dataclass
class Session:
    """What every command works with: the client, its endpoint (for messages), the fleet file (or None) and the
    standard streams."""

    client: Any
    endpoint: str
    fleet: Any = None  # a FleetSpec
    fleet_problem: str = ""  # why the default fleet file could not be read (only an error if a name needs it)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)


def open_session(
    args: argparse.Namespace,
    *,
    env: Mapping[str, str] | None = None,
    client_factory: Callable[..., Any] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> Session:
    """Credentials (``--stack`` or the environment), the client and the fleet file."""
    credentials = read_credentials(args.stack, env=env, failure=DeviceFailure)
    endpoint, stack_fleet = credentials.endpoint, credentials.fleet_file
    if client_factory is None:
        from lattigo_fleet.client import LattigoClient

        client_factory = LattigoClient
    try:
        client = client_factory(endpoint, credentials.key_name, credentials.api_key, max_retries=2)
    except ValueError as e:
        raise DeviceFailure(f"bad endpoint {endpoint!r}: {e}") from None
    session = Session(
        client, endpoint, stdin=stdin or sys.stdin, stdout=stdout or sys.stdout, stderr=stderr or sys.stderr
    )
    fleet_arg = getattr(args, "fleet", None)
    chosen = fleet_arg or stack_fleet
    if chosen:
        session.fleet = _load_fleet(str(chosen))  # asked for: a bad file is an error
    elif Path("fleet.yaml").is_file():
        try:
            session.fleet = _load_fleet("fleet.yaml")
        except DeviceFailure as e:
            session.fleet_problem = str(e)
    return session


def _load_fleet(path: str) -> Any:
    return load_fleet_file(path, DeviceFailure)


def resolve(session: Session, targets: Sequence[str]) -> list[Device]:
    """ICCIDs and fleet.yaml names → the account's devices, in the order given (each once). Raises
    :class:`DeviceFailure` naming every argument that is not a SIM of the fleet file or of the account."""
    fleet = session.fleet
    wanted: list[str] = []
    unknown: list[str] = []
    for raw in targets:
        arg = raw.strip()
        sim = fleet.by_name.get(arg) if fleet is not None else None
        if sim is not None:
            wanted.append(sim.iccid)
        elif iccid_pattern().match(arg):
            wanted.append(arg)
        else:
            unknown.append(arg)
    if unknown:
        raise DeviceFailure(_unknown_names(session, unknown))
    wanted = list(dict.fromkeys(wanted))
    found, foreign = _lookup(session.client, wanted)
    missing = [i for i in wanted if i not in found]
    if missing:
        what = ", ".join(_with_name(session, i) for i in missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        if all(i in foreign for i in missing):
            raise DeviceFailure(f"ICCID {what}: belongs to another account (HTTP 403)")
        raise DeviceFailure(f"ICCID {what}: not in the account at {session.endpoint} (or not activated yet)")
    names = {sim.iccid: sim.name for sim in fleet.sims} if fleet is not None else {}
    devices = []
    for iccid in wanted:
        live = found[iccid]
        devices.append(
            Device(iccid, str(live.get("device_name") or ""), names.get(iccid, ""), str(live.get("state") or ""))
        )
    return devices


def _unknown_names(session: Session, unknown: Sequence[str]) -> str:
    first = unknown[0]
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    fleet = session.fleet
    if fleet is None:
        why = f" ({session.fleet_problem})" if session.fleet_problem else ""
        return (
            f"{first!r}{more} is not an ICCID (19-20 digits), and there is no fleet file to look the name up "
            f"in{why}: pass --fleet FILE"
        )
    guess = did_you_mean(first, fleet.by_name)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return f"no SIM named {first!r}{more} in {fleet.path}, and it is not an ICCID{hint}"


def _with_name(session: Session, iccid: str) -> str:
    sim = session.fleet.by_iccid.get(iccid) if session.fleet is not None else None
    return f"{iccid} ({sim.name})" if sim is not None and sim.name != iccid else iccid


def _lookup(client: Any, iccids: Sequence[str]) -> tuple[dict[str, Mapping[str, Any]], set[str]]:
    """(ICCID → device object for those in the account, ICCIDs another account owns). Few: one GET each;
    more than the client's ``lookup_threshold``: the paged snapshot."""
    from lattigo_fleet.client import AuthenticationError, NotFound

    if len(iccids) > int(getattr(client, "lookup_threshold", 10)):
        wanted = set(iccids)
        return {i: d for i, d in client.snapshot().items() if i in wanted}, set()
    found: dict[str, Mapping[str, Any]] = {}
    foreign: set[str] = set()
    for iccid in iccids:
        try:
            found[iccid] = client.device(iccid, id_type="iccid")
        except NotFound:
            pass
        except AuthenticationError as e:
            if e.status != 403:
                raise
            foreign.add(iccid)
    return found, foreign


# --------------------------------------------------------------------------------------------------
# Sending, and the per-device calls


def confirm(session: Session, args: argparse.Namespace, action: str) -> None:
    """Ask "<action>? [y/N]" on the terminal unless ``--yes``; without a terminal, refuse rather than wait."""
    if getattr(args, "yes", False):
        return
    isatty = getattr(session.stdin, "isatty", None)
    if not (callable(isatty) and isatty()):
        raise DeviceFailure(f"refusing to {action} without confirmation: standard input is not a terminal (pass --yes)")
    session.stderr.write(f"{action[0].upper()}{action[1:]}? [y/N] ")
    session.stderr.flush()
    answer = session.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise NotConfirmed()


def each_device(devices: Sequence[Device], call: Callable[[Device], Any]) -> list[Outcome]:
    """``call`` for each device; a failure is that device's error. After a connection or credential failure the
    devices left are not tried (each says why)."""
    from lattigo_fleet.client import AuthenticationError, LattigoConnectionError, LattigoError, RateLimited

    outcomes: list[Outcome] = []
    stop = ""
    for device in devices:
        if stop:
            outcomes.append(Outcome(device, False, error=f"not tried: {stop}"))
            continue
        try:
            outcomes.append(Outcome(device, True, call(device)))
        except LattigoError as e:
            outcomes.append(Outcome(device, False, error=_device_error(e)))
            if isinstance(e, (AuthenticationError, LattigoConnectionError, RateLimited)):
                stop = f"an earlier call failed ({e.__class__.__name__})"
    return outcomes


def _device_error(e: Exception) -> str:
    """The API's own words for one device (its per-device answer or error body), else the error."""
    from lattigo_fleet.client import LattigoConnectionError

    if isinstance(e, LattigoConnectionError):
        return f"no answer from the API ({e.__class__.__name__})"
    detail = getattr(e, "detail", None)
    status = getattr(e, "status", None)
    if detail:
        return f"HTTP {status}: {detail}" if status and status >= 300 else str(detail)
    return str(e).splitlines()[0] if str(e) else e.__class__.__name__


def parse_when(value: str | None, option: str) -> date | datetime | None:
    """``YYYY-MM-DD`` (a date) or an ISO 8601 time (naive = UTC), for ``--since``/``--until``."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DeviceFailure(f"{option} {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


When = date | datetime


def _window(args: argparse.Namespace, default_days: int | None) -> tuple[When | None, When | None]:
    since = parse_when(args.since, "--since")
    until = parse_when(args.until, "--until")
    if default_days is not None:
        today = datetime.now(UTC).date()
        until = until if until is not None else today
        since = since if since is not None else today - timedelta(days=default_days)
    if since is not None and until is not None and _as_moment(since) > _as_moment(until, end=True):
        raise DeviceFailure(f"--since {_text(since)} is after --until {_text(until)}")
    return since, until


def _as_moment(value: date | datetime, end: bool = False) -> datetime:
    if isinstance(value, datetime):
        return value
    moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return moment + timedelta(days=1) - timedelta(microseconds=1) if end else moment


def _text(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


# --------------------------------------------------------------------------------------------------
# Output


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> str:
    """The commands' table (:func:`~lattigo_fleet.terminal.table.table`), its cells written by :func:`_cell`."""
    return "".join(line + "\n" for line in table(headers, rows, indent=indent, cell=_cell))


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split())
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _device_heading(outcome: Outcome, count: int, noun: str) -> str:
    d = outcome.device
    name = f"{d.name}  " if d.name and d.name != d.iccid else ""
    head = f"{name}{d.iccid}  device {d.device_name}  {d.state}"
    if not outcome.ok:
        return f"{head}: error: {outcome.error}\n"
    return f"{head}: {count} {noun}\n"


def _sections(
    outcomes: Sequence[Outcome], noun: str, headers: Sequence[str], row: Callable[[Mapping[str, Any]], Sequence[Any]]
) -> str:
    """One section per device: a heading with its count (or its error), then its rows."""
    out = []
    for outcome in outcomes:
        items = list(outcome.value or []) if outcome.ok else []
        out.append(_device_heading(outcome, len(items), noun))
        if items:
            out.append(render_table(headers, (row(item) for item in items), indent="  "))
    return "".join(out)


def _emit(session: Session, args: argparse.Namespace, document: Mapping[str, Any], text: str) -> None:
    if args.json:
        session.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        session.stdout.write(text)


def _status(command: str, outcomes: Sequence[Outcome], verb: str) -> int:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        return fail(
            command,
            f"{len(failed)} of {len(outcomes)} device(s) {verb}: see the table "
            f"(first: {failed[0].device.label}: {failed[0].error})",
        )
    return 0


def _names(devices: Sequence[Device], most: int = 5) -> str:
    shown = ", ".join(d.label for d in devices[:most])
    return shown + (f" and {len(devices) - most} more" if len(devices) > most else "")


# --------------------------------------------------------------------------------------------------
# The commands


def cmd_sms_send(session: Session, args: argparse.Namespace) -> int:
    text = args.text
    if not text:
        raise DeviceFailure("--text is empty: nothing to send")
    devices = resolve(session, args.targets)
    confirm(session, args, f"send the SMS {text!r} to {len(devices)} device(s) ({_names(devices)})")
    from lattigo_fleet.client import LattigoError

    by_name = {d.device_name: d for d in devices}
    try:
        result = session.client.send_sms(list(by_name), text)
    except LattigoError as e:  # authentication or the rate limit stopped the whole operation
        result = e.partial_result
        if result is None:
            raise
        for name in by_name:
            if name not in result.succeeded and name not in result.failed:
                result.failed[name] = f"not sent: {_device_error(e)}"
    outcomes = [
        Outcome(d, True, "Success: queued")
        if d.device_name in result.succeeded
        else Outcome(d, False, error=str(result.failed.get(d.device_name, "no answer for this device")))
        for d in devices
    ]
    queued = sum(o.ok for o in outcomes)
    document = {
        "command": "sms send",
        "text": text,
        "queued": queued,
        "refused": len(outcomes) - queued,
        "devices": [o.to_json() for o in outcomes],
    }
    table = render_table(
        ("SIM", "ICCID", "DEVICE", "STATE", "ANSWER"),
        (
            (o.device.label, o.device.iccid, o.device.device_name, o.device.state, o.value if o.ok else o.error)
            for o in outcomes
        ),
    )
    _emit(session, args, document, f"SMS {text!r}: {queued} queued, {len(outcomes) - queued} refused\n{table}")
    return _status("sms send", outcomes, "refused")


def cmd_sms_log(session: Session, args: argparse.Namespace) -> int:
    since, until = _window(args, None)
    devices = resolve(session, args.targets)
    outcomes = each_device(
        devices, lambda d: session.client.get_sms(d.iccid, since, until, args.direction, id_type="iccid")
    )
    document = {
        "command": "sms log",
        "since": _text(since) or None,
        "until": _text(until) or None,
        "direction": args.direction,
        "devices": [o.to_json("sms") for o in outcomes],
    }
    text = _sections(
        outcomes,
        "SMS",
        ("TIME", "TYPE", "STATUS", "REPORTED", "MESSAGE", "FAILURE"),
        lambda m: (
            m.get("event_timestamp"),
            m.get("event_type"),
            m.get("event_status"),
            m.get("report_timestamp"),
            m.get("message_body"),
            m.get("failure_reason"),
        ),
    )
    _emit(session, args, document, text)
    return _status("sms log", outcomes, "failed")


def cmd_locate(session: Session, args: argparse.Namespace) -> int:
    devices = resolve(session, args.targets)
    confirm(session, args, f"ask the carrier to locate {len(devices)} device(s) ({_names(devices)}), charged per call")
    outcomes = each_device(devices, lambda d: session.client.cellular_locate(d.iccid, id_type="iccid"))
    document = {"command": "locate", "devices": [o.to_json("carrier_response") for o in outcomes]}
    table = render_table(
        ("SIM", "ICCID", "DEVICE", "STATE", "CARRIER RESPONSE"),
        (
            (
                o.device.label,
                o.device.iccid,
                o.device.device_name,
                o.device.state,
                _plain(o.value) if o.ok else _error_cell(o.error),
            )
            for o in outcomes
        ),
    )
    _emit(session, args, document, table)
    return _status("locate", outcomes, "refused")


def _error_cell(error: str) -> str:
    return error if error.lower().startswith("error") else f"error: {error}"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def cmd_reports(session: Session, args: argparse.Namespace) -> int:
    since, until = _window(args, None)
    if args.limit is not None and args.limit < 1:
        raise DeviceFailure("--limit must be at least 1")
    devices = resolve(session, args.targets)
    outcomes = each_device(
        devices, lambda d: session.client.device_reports(d.iccid, since, until, args.limit, id_type="iccid")
    )
    document = {
        "command": "reports",
        "since": _text(since) or None,
        "until": _text(until) or None,
        "limit": args.limit,
        "devices": [o.to_json("reports") for o in outcomes],
    }
    text = _sections(
        outcomes,
        "report(s)",
        ("TIME", "TYPE", "EVENT", "LATITUDE", "LONGITUDE", "SPEED", "BATTERY", "VOLTAGE", "TEMP", "FUEL", "RSSI"),
        lambda r: (
            r.get("created_at"),
            r.get("type"),
            r.get("event_code"),
            r.get("latitude"),
            r.get("longitude"),
            r.get("speed"),
            r.get("battery"),
            r.get("voltage"),
            r.get("temperature"),
            r.get("fuel_level"),
            r.get("rssi"),
        ),
    )
    _emit(session, args, document, text)
    return _status("reports", outcomes, "failed")


_MESSAGE_HEADERS = ("CREATED", "EVENT", "SEQ", "LATITUDE", "LONGITUDE", "SPEED", "HEADING", "SATS", "RSSI")


def _message_row(m: Mapping[str, Any]) -> tuple[Any, ...]:
    rssi = m.get("rssi", m.get("rsssi"))
    return (
        m.get("created_at"),
        m.get("event_code"),
        m.get("sequence_number"),
        m.get("latitude"),
        m.get("longitude"),
        m.get("speed"),
        m.get("heading"),
        m.get("satellites"),
        rssi,
    )


def cmd_calamp_messages(session: Session, args: argparse.Namespace) -> int:
    since, until = _window(args, CALAMP_DAYS)
    assert since is not None and until is not None
    devices = resolve(session, args.targets)
    outcomes = each_device(
        devices, lambda d: session.client.calamp_messages(d.iccid, since, until, args.event_code, id_type="iccid")
    )
    document = {
        "command": "calamp messages",
        "since": _text(since),
        "until": _text(until),
        "event_code": args.event_code,
        "devices": [o.to_json("messages") for o in outcomes],
    }
    text = _sections(outcomes, f"message(s) from {_text(since)} to {_text(until)}", _MESSAGE_HEADERS, _message_row)
    _emit(session, args, document, text)
    return _status("calamp messages", outcomes, "failed")


def cmd_calamp_last(session: Session, args: argparse.Namespace) -> int:
    devices = resolve(session, args.targets)
    outcomes = each_device(devices, lambda d: session.client.last_calamp_message(d.iccid, id_type="iccid"))
    document = {"command": "calamp last", "devices": [o.to_json("message") for o in outcomes]}
    rows = []
    for o in outcomes:
        head = (o.device.label, o.device.iccid, o.device.device_name)
        if not o.ok:
            rows.append((*head, _error_cell(o.error), *[""] * (len(_MESSAGE_HEADERS) - 1)))
        elif o.value is None:
            rows.append((*head, "no message", *[""] * (len(_MESSAGE_HEADERS) - 1)))
        else:
            rows.append((*head, *_message_row(o.value)))
    _emit(session, args, document, render_table(("SIM", "ICCID", "DEVICE", *_MESSAGE_HEADERS), rows))
    return _status("calamp last", outcomes, "failed")


def cmd_calamp_events(session: Session, args: argparse.Namespace) -> int:
    since, until = _window(args, CALAMP_DAYS)
    assert since is not None and until is not None
    messages = session.client.calamp_events(args.event_code, since, until, args.state)
    document = {
        "command": "calamp events",
        "event_code": args.event_code,
        "since": _text(since),
        "until": _text(until),
        "state": args.state,
        "count": len(messages),
        "messages": messages,
    }
    head = (
        f"{len(messages)} message(s) with event code {args.event_code} from {_text(since)} to {_text(until)}"
        + (f", devices in state {args.state}" if args.state else "")
        + "\n"
    )
    table = render_table(("MOBILE ID", *_MESSAGE_HEADERS), ((m.get("mobile_id"), *_message_row(m)) for m in messages))
    _emit(session, args, document, head + (table if messages else ""))
    return 0


def _read_imeis(args: argparse.Namespace) -> list[str]:
    imeis = [i.strip() for i in args.imeis if i.strip()]
    if args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8-sig")
        except OSError as e:
            raise DeviceFailure(f"cannot read the IMEI file {args.file}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise DeviceFailure(f"cannot read the IMEI file {args.file}: it is not UTF-8 text") from None
        for line in text.splitlines():
            value = line.split("#", 1)[0].strip().strip("\"'")
            if value:
                imeis.append(value)
    if not imeis:
        raise DeviceFailure("no IMEI given: name them, or --file FILE (one per line)")
    return list(dict.fromkeys(imeis))


def cmd_upload_imeis(session: Session, args: argparse.Namespace) -> int:
    imeis = _read_imeis(args)
    shown = ", ".join(imeis[:5]) + (f" and {len(imeis) - 5} more" if len(imeis) > 5 else "")
    confirm(
        session,
        args,
        f"upload {len(imeis)} IMEI(s) ({shown}) to the carrier's device database as {args.email} / SKU {args.sku}",
    )
    from lattigo_fleet.client import LattigoError

    try:
        result = session.client.upload_request(imeis, args.email, args.sku)
    except LattigoError as e:
        result = e.partial_result
        if result is None:
            raise
        for imei in imeis:
            if imei not in result.succeeded and imei not in result.failed:
                result.failed[imei] = f"not sent: {_device_error(e)}"
    rows = [
        (
            imei,
            "accepted" if imei in result.succeeded else "rejected",
            "" if imei in result.succeeded else result.failed.get(imei, "no answer for this IMEI"),
        )
        for imei in imeis
    ]
    accepted = sum(1 for r in rows if r[1] == "accepted")
    document = {
        "command": "upload-imeis",
        "email": args.email,
        "sku": args.sku,
        "accepted": accepted,
        "rejected": len(rows) - accepted,
        "imeis": [{"imei": i, "ok": s == "accepted", **({"error": m} if m else {})} for i, s, m in rows],
    }
    text = (
        f"upload as {args.email} / SKU {args.sku}: {accepted} accepted, {len(rows) - accepted} rejected\n"
        + render_table(("IMEI", "RESULT", "REASON"), rows)
    )
    _emit(session, args, document, text)
    if accepted < len(rows):
        first = next(r for r in rows if r[1] != "accepted")
        return fail(
            "upload-imeis",
            f"{len(rows) - accepted} of {len(rows)} IMEI(s) rejected: see the table (first: {first[0]}: {first[2]})",
        )
    return 0


# --------------------------------------------------------------------------------------------------
# The parsers and the dispatch


def _common(parser: argparse.ArgumentParser, *, targets: bool = True, sends: bool = False) -> None:
    if targets:
        parser.add_argument(
            "targets", nargs="+", metavar="SIM", help="an ICCID, or the name of a SIM in the fleet file"
        )
        parser.add_argument(
            "--fleet",
            metavar="FILE",
            help="the fleet file whose SIM names to accept (default: the stack's "
            "lattigo-fleet:fleetFile, else fleet.yaml if present)",
        )
    parser.add_argument("--stack", help="read the credentials from this stack's config (else LATTIGO_* variables)")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    if sends:
        parser.add_argument("-y", "--yes", action="store_true", help="send without asking for confirmation")


def _dates(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--since", metavar="DATE", help=f"start (YYYY-MM-DD or an ISO 8601 time, UTC); {default}")
    parser.add_argument("--until", metavar="DATE", help="end, inclusive (a date covers the whole day; default: now)")


def add_parsers(sub: Any) -> None:
    """Register ``sms``, ``locate``, ``reports``, ``calamp`` and ``upload-imeis`` on ``lattigo-fleet``'s
    subparsers (``sub``)."""
    sms = sub.add_parser("sms", help="send SMS to SIMs, or read their SMS log")
    sms_sub = sms.add_subparsers(dest="sms_command", required=True, metavar="ACTION")
    send = sms_sub.add_parser("send", help="queue an SMS to SIMs (asks for confirmation)")
    _common(send, sends=True)
    send.add_argument("--text", "-t", required=True, help="the SMS text")
    send.set_defaults(func=main, run=cmd_sms_send, label="sms send")
    log = sms_sub.add_parser("log", help="the SMS sent to and received from SIMs (VDF devices)")
    _common(log)
    _dates(log, "default: all the API keeps")
    log.add_argument("--direction", choices=("all", "sent", "received"), default="all")
    log.set_defaults(func=main, run=cmd_sms_log, label="sms log")

    locate = sub.add_parser("locate", help="ask the carrier to locate SIMs (charged per call; asks for confirmation)")
    _common(locate, sends=True)
    locate.set_defaults(func=main, run=cmd_locate, label="locate")

    reports = sub.add_parser("reports", help="device reports of SIMs (the latest one unless --limit)")
    _common(reports)
    _dates(reports, "default: one month ago (the API's)")
    reports.add_argument("--limit", type=int, help="how many reports per SIM, newest first (the API's default: 1)")
    reports.set_defaults(func=main, run=cmd_reports, label="reports")

    calamp = sub.add_parser("calamp", help="CalAmp messages: per SIM, the latest, or one event code account-wide")
    calamp_sub = calamp.add_subparsers(dest="calamp_command", required=True, metavar="ACTION")
    messages = calamp_sub.add_parser("messages", help="the CalAmp messages of SIMs in a date range")
    _common(messages)
    _dates(messages, f"default: {CALAMP_DAYS} days ago")
    messages.add_argument("--event-code", type=int, help="only messages with this event code")
    messages.set_defaults(func=main, run=cmd_calamp_messages, label="calamp messages")
    last = calamp_sub.add_parser("last", help="the latest CalAmp message of SIMs")
    _common(last)
    last.set_defaults(func=main, run=cmd_calamp_last, label="calamp last")
    events = calamp_sub.add_parser("events", help="CalAmp messages with one event code, across all devices")
    _common(events, targets=False)
    events.add_argument("--event-code", type=int, required=True, help="the event code to search for")
    _dates(events, f"default: {CALAMP_DAYS} days ago")
    events.add_argument(
        "--state",
        choices=SIM_STATES,
        help="only devices in this state",
    )
    events.set_defaults(func=main, run=cmd_calamp_events, label="calamp events")

    upload = sub.add_parser(
        "upload-imeis", help="upload IMEIs to the carrier's device database (asks for confirmation)"
    )
    upload.add_argument("imeis", nargs="*", metavar="IMEI")
    upload.add_argument("--file", metavar="FILE", help="IMEIs, one per line (# comments allowed)")
    upload.add_argument("--email", required=True, help="the vendor's carrier-registered email address")
    upload.add_argument("--sku", required=True, help="the vendor's carrier-registered SKU")
    _common(upload, targets=False, sends=True)
    upload.set_defaults(func=main, run=cmd_upload_imeis, label="upload-imeis")


def main(
    args: argparse.Namespace,
    *,
    env: Mapping[str, str] | None = None,
    client_factory: Callable[..., Any] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the device command that ``args.run`` names: 0 when every device succeeded, 1 otherwise."""
    streams = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
    return Command(args.label).run(lambda: _run(args, env, client_factory, streams))


def _run(
    args: argparse.Namespace,
    env: Mapping[str, str] | None,
    client_factory: Callable[..., Any] | None,
    streams: Mapping[str, TextIO | None],
) -> int:
    from lattigo_fleet.client import LattigoError

    session: Session | None = None
    try:
        session = open_session(args, env=env, client_factory=client_factory, **streams)
        return int(args.run(session, args))
    except NotConfirmed:
        raise DeviceFailure("not confirmed: nothing sent") from None
    except LattigoError as e:  # the whole command, not one device
        raise DeviceFailure(api_failure_line(e, session.endpoint if session else "")) from None
    except CommandFailure as e:
        # A command that sends says that it sent nothing when it stops before its calls.
        if hasattr(args, "yes") and "nothing sent" not in str(e):
            raise DeviceFailure(f"{e}; nothing sent") from None
        raise
    finally:
        if session is not None:
            session.client.close()
