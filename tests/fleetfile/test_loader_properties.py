"""Property-based: ``load_fleet`` on generated fleet files (devtools/fleetgen.py) either returns the
SIMs the file declares or raises a FleetError whose every issue is inside the file (1 <= line <= lines
+ 1, the column on that line) with a one-line message free of ruamel's "<unicode string>"; never any
other exception.  Bounded for ``make test``; bench/fuzz_loader.py runs the same generators longer."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.fleetgen import Fleet, fleets, mutations, outcome_problems

BOUNDED = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fleet_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "fleet.yaml"


@BOUNDED
@given(fleet=fleets())
def test_a_valid_generated_fleet_loads_to_the_sims_it_declares(fleet_file: Path, fleet: Fleet) -> None:
    raw = fleet.text.encode("utf-8")
    fleet_file.write_bytes(raw)
    spec, problems = outcome_problems(fleet_file, raw)
    assert spec is not None, f"{fleet.text}\n{problems}"
    assert spec.sims == fleet.sims
    assert [s.name for s in spec.sims] == [s.name for s in fleet.sims]


@BOUNDED
@given(data=st.data(), fleet=fleets(max_sims=4))
def test_a_damaged_fleet_loads_or_fails_with_located_issues(
    fleet_file: Path, data: st.DataObject, fleet: Fleet
) -> None:
    raw = data.draw(mutations(fleet.text), label="file")
    fleet_file.write_bytes(raw)
    _, problems = outcome_problems(fleet_file, raw)  # any exception but FleetError fails the test
    assert problems == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fleet=fleets())
def test_the_fast_and_the_positioned_readings_agree(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet) -> None:
    """load_fleet reads plain files with libyaml and everything else with positions: the same fleet either way,
    and the fast one finds every position when asked."""
    from lattigo_fleet.fleetfile import load_fleet
    from lattigo_fleet.fleetfile.loader import _Loader

    path = tmp_path_factory.mktemp("agree") / "fleet.yaml"
    path.write_text(fleet.text, encoding="utf-8")
    slow = _Loader(str(path)).load()
    fast = load_fleet(path)
    assert (fast.sims, fast.policy, fast.files) == (slow.sims, slow.policy, slow.files)
    for sim in slow.sims:
        for field in ("", "imei", "cost_center", "notes.note", "usage_limit", "state"):
            assert fast.source_of(sim.iccid, field) == slow.source_of(sim.iccid, field)
