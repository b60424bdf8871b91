"""Helpers for the spec tests: write a fleet (fleet.yaml and fleet.d files) into a temporary directory
and load it from there, so that issue file names read "fleet.yaml" and "fleet.d/x.yaml"."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from lattigo_fleet.fleetfile import FleetError, FleetSpec, Issue, load_fleet

#: the files of a fleet: {"fleet.yaml": "...", "fleet.d/a.yaml": "..."}, or the text of fleet.yaml alone
FleetFiles = dict[str, str] | str
#: the ``write_fleet`` fixture: writes the files, gives the path of fleet.yaml
WriteFleet = Callable[[FleetFiles], str]
#: the ``load`` fixture: writes the files and loads the fleet
LoadFleet = Callable[[FleetFiles], FleetSpec]
#: the ``issues`` fixture: writes the files, gives the issues of loading them (fails the test if they load)
FleetIssues = Callable[[FleetFiles], list[Issue]]


@pytest.fixture
def write_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WriteFleet:
    """write_fleet({"fleet.yaml": "...", "fleet.d/a.yaml": "..."}) or write_fleet("...") (fleet.yaml
    only): writes the (dedented) files and returns "fleet.yaml", relative to the cwd."""
    monkeypatch.chdir(tmp_path)

    def write(files: FleetFiles) -> str:
        if isinstance(files, str):
            files = {"fleet.yaml": files}
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return "fleet.yaml"

    return write


@pytest.fixture
def load(write_fleet: WriteFleet) -> LoadFleet:
    def _load(files: FleetFiles) -> FleetSpec:
        return load_fleet(write_fleet(files))

    return _load


@pytest.fixture
def issues(write_fleet: WriteFleet) -> FleetIssues:
    """The issues of an invalid fleet (fails the test if it loads)."""

    def _issues(files: FleetFiles) -> list[Issue]:
        path = write_fleet(files)
        with pytest.raises(FleetError) as caught:
            load_fleet(path)
        return caught.value.issues

    return _issues
