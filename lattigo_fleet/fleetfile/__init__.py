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
- Hostile files are refused while they are parsed, each at the node that crosses the limit (see
  ``positions``): aliases may repeat at most 1,000,000 nodes plus one per node the file writes (a
  "billion laughs" file is refused in milliseconds), nesting stops at 100 levels, integers at 4,300
  digits; ``usage_limit.kb_limit`` is at most 2^53 - 1 (the schema says why).  A duplicate anchor is an
  error, not a warning: a second ``&a`` silently changes what every later ``*a`` gives.  A character
  YAML does not allow is reported at its own line and column.
- Issues are sorted by file (fleet.yaml, then fleet.d in name order), then line and column; errors at
  the same place come best-first (jsonschema's relevance).

The package, in the order data flows through it:

- ``model``: the field constants, :class:`Location`, :class:`Issue`, :class:`FleetError`, and the
  desired state (:class:`UsageLimit`, :class:`DesiredSim`, :class:`Policy`, :class:`FleetSpec`).
- ``schema``: :data:`SCHEMA_PATH` and :func:`fleet_schema`, the JSON Schema of fleet.yaml.
- ``positions``: the YAML side: parsing with positions kept, duplicate keys, file:line:column of a field.
- ``messages``: jsonschema errors → messages in plain English.
- ``loader``: :func:`load_fleet`: read, validate, cross-check, merge defaults and groups.
- ``account``: :func:`validate_against_account`, checks against the live account.
- ``cli``: :func:`main_validate`, ``lattigo-fleet validate``.

Import from the package (``from lattigo_fleet.fleetfile import load_fleet``), not from its modules.
"""

from lattigo_fleet.fleetfile.account import validate_against_account
from lattigo_fleet.fleetfile.cli import main_validate
from lattigo_fleet.fleetfile.loader import load_fleet
from lattigo_fleet.fleetfile.model import (
    ACTIVATION_FIELDS,
    DEFAULT_MAX_CHANGES,
    DEFAULT_ON_REMOVE,
    DEFAULT_STATE,
    IGNORABLE_FIELDS,
    NO_LIMIT,
    ON_REMOVE_CHOICES,
    SHARED_FIELDS,
    SIM_ONLY_FIELDS,
    STATES,
    UNMANAGED,
    USAGE_ACTIONS,
    DesiredSim,
    FleetError,
    FleetSpec,
    Issue,
    Location,
    Policy,
    SimInputs,
    Unmanaged,
    UsageLimit,
)
from lattigo_fleet.fleetfile.schema import SCHEMA_PATH, fleet_schema
from lattigo_fleet.vocabulary import NOTE_FIELDS

__all__ = [
    "ACTIVATION_FIELDS",
    "DEFAULT_MAX_CHANGES",
    "DEFAULT_ON_REMOVE",
    "DEFAULT_STATE",
    "IGNORABLE_FIELDS",
    "NO_LIMIT",
    "NOTE_FIELDS",
    "ON_REMOVE_CHOICES",
    "SCHEMA_PATH",
    "SHARED_FIELDS",
    "SIM_ONLY_FIELDS",
    "STATES",
    "UNMANAGED",
    "USAGE_ACTIONS",
    "DesiredSim",
    "SimInputs",
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
