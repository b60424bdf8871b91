"""The wheel works on its own: what `.pre-commit-hooks.yaml` gives a fleet repository.

- The schema the code reads ships in the package (``lattigo_fleet/fleetfile/fleet.schema.json``) and the copy users
  read, ``schemas/fleet.schema.json``, is byte-equal to it (the package copy is the source: edit it, then copy it
  over).
- ``[project].dependencies`` names exactly the third-party distributions that lattigo_fleet/, providers/ and
  emulator/ import (an AST scan, with ``if TYPE_CHECKING:`` blocks left out).
- End to end (``e2e``, about half a minute): the working tree as it would be committed (tracked and untracked,
  not ignored files) becomes a git repository of its own; its wheel is built and must hold the schema and declare
  the dependencies; a sample fleet repository uses that repository's hook through the real ``pre-commit`` (its own
  virtualenv, pinned by constraints.txt), which clones it and ``pip install``s it into a fresh virtualenv, as it
  does for every user. The hook passes on a valid fleet.yaml, and fails on an invalid one with one line naming
  file, line, column and field, and no traceback.

Everything is installed with ``--no-index`` from a wheelhouse,
``${LATTIGO_FLEET_CACHE:-${XDG_CACHE_HOME:-~/.cache}/lattigo-fleet}/wheelhouse``; only when it lacks a pinned
version is it filled, once, through pip's own configuration (the only step that needs the network).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Sequence
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from lattigo_fleet.fleetfile.schema import SCHEMA_PATH, SCHEMA_RESOURCE

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"
PACKAGES = ("lattigo_fleet", "providers", "emulator")
HOOK_ID = "lattigo-fleet-validate"
# What the wheelhouse holds besides the project's dependencies and its build backend ([build-system]): the tool
# that runs the hook.
TOOLS = ("pre-commit",)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict[str, object]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _declared() -> list[str]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    deps = project["dependencies"]
    assert isinstance(deps, list) and all(isinstance(d, str) for d in deps)
    return [str(d) for d in deps]


def _build_requires() -> list[str]:
    build = _pyproject()["build-system"]
    assert isinstance(build, dict)
    return [str(r) for r in build["requires"]]


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, f"not a requirement: {requirement!r}"
    return _normalize(match.group(0))


class _Imports(ast.NodeVisitor):
    """The top-level names of the absolute imports of a module, but for those under ``if TYPE_CHECKING:``."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name.split(".")[0] for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.names.add(node.module.split(".")[0])


def _third_party_imports() -> dict[str, set[str]]:
    """{top-level module: the files importing it} for every import of the library that is neither the standard
    library nor one of our packages."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            visitor = _Imports()
            visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            for name in visitor.names:
                if name in sys.stdlib_module_names or name in PACKAGES or name == "__future__":
                    continue
                found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_published_schema_is_the_packaged_one() -> None:
    assert SCHEMA_PATH == REPO / "schemas" / "fleet.schema.json"
    assert SCHEMA_PATH.read_bytes() == SCHEMA_RESOURCE.read_bytes(), (
        "schemas/fleet.schema.json differs from lattigo_fleet/fleetfile/fleet.schema.json (the source, what the code "
        "reads and the wheel ships): edit the package copy, then "
        "cp lattigo_fleet/fleetfile/fleet.schema.json schemas/fleet.schema.json"
    )


def test_the_declared_dependencies_are_the_imported_ones() -> None:
    distributions = packages_distributions()
    declared = {_requirement_name(r) for r in _declared()}
    imported: dict[str, str] = {}  # distribution -> a module it provides
    unknown = []
    for module, where in sorted(_third_party_imports().items()):
        dists = {_normalize(d) for d in distributions.get(module, [])}
        if not dists:
            unknown.append(f"{module} (imported by {', '.join(sorted(where))})")
            continue
        # A module several distributions provide (a namespace): one of them declared is enough.
        imported[min(dists & declared or dists)] = module
    assert not unknown, f"imported but installed by no distribution here: {unknown}"
    undeclared = sorted(f"{dist} (import {imported[dist]})" for dist in set(imported) - declared)
    assert not undeclared, f"imported but not in [project].dependencies: {undeclared}"
    unused = sorted(declared - set(imported))
    assert not unused, f"in [project].dependencies but never imported by {', '.join(PACKAGES)}: {unused}"


# --- end to end: the wheel and the hook ------------------------------------------------------------------


def _cache_dir() -> Path:
    explicit = os.environ.get("LATTIGO_FLEET_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lattigo-fleet"


def _run(args: Sequence[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _pip(*args: str | Path) -> list[str | Path]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]


def _offline(wheelhouse: Path) -> list[str | Path]:
    return ["--no-index", "--find-links", wheelhouse]


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """Wheels of every pinned requirement the test installs (the project's, pre-commit's, the build backend's)."""
    house = _cache_dir() / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    wanted = [*_declared(), *TOOLS, *_build_requires()]
    probe = _pip("install", "--dry-run", "--quiet", "--ignore-installed", *_offline(house), "-c", CONSTRAINTS, *wanted)
    if subprocess.run([str(a) for a in probe], capture_output=True, timeout=300, check=False).returncode != 0:
        _run(_pip("wheel", "--quiet", "--find-links", house, "--wheel-dir", house, "-c", CONSTRAINTS, *wanted))
    return house


def _git(*args: str | Path, cwd: Path) -> str:
    identity = ["-c", "user.name=lattigo-fleet tests", "-c", "user.email=tests@example.invalid"]
    return _run(["git", *identity, "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args], cwd=cwd)


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The working tree as it would be committed, as a repository of its own: (its path, its commit)."""
    root = tmp_path_factory.mktemp("hook-repo")
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    _git("init", "--quiet", cwd=root)
    _git("add", "--all", cwd=root)
    _git("commit", "--quiet", "--no-verify", "-m", "the working tree under test", cwd=root)
    return root, _git("rev-parse", "HEAD", cwd=root).strip()


@pytest.fixture(scope="module")
def pre_commit(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """The pre-commit executable, in a virtualenv of its own."""
    venv = tmp_path_factory.mktemp("pre-commit-venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run(_pip("--python", python, "install", "--quiet", *_offline(wheelhouse), "-c", CONSTRAINTS, *TOOLS))
    return venv / "bin" / "pre-commit"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, hook_repo: tuple[Path, str], wheelhouse: Path) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(_pip("wheel", "--quiet", "--no-deps", *_offline(wheelhouse), "--wheel-dir", out, hook_repo[0]))
    (built,) = out.glob("lattigo_fleet-*.whl")
    return built


@pytest.mark.e2e
def test_the_wheel_holds_the_schema_and_declares_the_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        assert whl.read("lattigo_fleet/fleetfile/fleet.schema.json") == SCHEMA_RESOURCE.read_bytes()
        (metadata,) = (n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        requires = re.findall(r"^Requires-Dist: (.+)$", whl.read(metadata).decode(), re.M)
    core = sorted(_requirement_name(r) for r in requires if "extra ==" not in r)
    assert core == sorted(_requirement_name(r) for r in _declared())


def _pre_commit_env(home: Path, wheelhouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PRE_COMMIT", "VIRTUAL_ENV"))}
    env.update(
        PRE_COMMIT_HOME=str(home),  # a cache of its own: every run installs the hook into a fresh virtualenv
        PRE_COMMIT_COLOR="never",
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
        PIP_CONSTRAINT=str(CONSTRAINTS),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


@pytest.fixture
def fleet_repo(tmp_path: Path, hook_repo: tuple[Path, str]) -> Path:
    """A fleet repository (fleet.yaml, committed) using the hook at the snapshot's commit."""
    repo = tmp_path / "fleet-repo"
    repo.mkdir()
    shutil.copy2(REPO / "fleet.yaml", repo / "fleet.yaml")
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hook_repo[0]}\n    rev: {hook_repo[1]}\n    hooks:\n      - id: {HOOK_ID}\n"
    )
    _git("init", "--quiet", cwd=repo)
    _git("add", "--all", cwd=repo)
    return repo


@pytest.mark.e2e
def test_the_pre_commit_hook_runs_from_a_fresh_install(
    fleet_repo: Path, pre_commit: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    env = _pre_commit_env(tmp_path / "pre-commit-home", wheelhouse)
    run = [pre_commit, "run", "--verbose", "--all-files", HOOK_ID]

    started = time.monotonic()
    ok = subprocess.run([str(a) for a in run], cwd=fleet_repo, env=env, capture_output=True, text=True, timeout=600)
    installed = time.monotonic() - started
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"^lattigo-fleet validate\.+Passed$", ok.stdout, re.M), ok.stdout
    assert re.search(r"^fleet\.yaml: \d+ SIMs OK$", ok.stdout, re.M), ok.stdout
    assert "Traceback" not in ok.stdout + ok.stderr

    fleet = fleet_repo / "fleet.yaml"
    lines = fleet.read_text().splitlines(keepends=True)
    (index,) = (i for i, line in enumerate(lines) if "name: truck-0002," in line)
    lines.insert(index + 1, "     state: parked,\n")
    fleet.write_text("".join(lines))
    _git("add", "fleet.yaml", cwd=fleet_repo)

    bad = subprocess.run([str(a) for a in run], cwd=fleet_repo, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(r"^lattigo-fleet validate\.+Failed$", bad.stdout, re.M), bad.stdout
    errors = [line for line in bad.stdout.splitlines() if line.startswith("fleet.yaml:")]
    states = "active, suspended, suspended_no_billing"
    assert errors == [f'fleet.yaml:{index + 2}:13: sims[1].state: must be one of {states}, not "parked"'], bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
    print(f"pre-commit: hook installed and run in {installed:.1f} s")
