"""The packages import one way. A small AST check of every module of the library, the provider and the
emulator: no import cycle between modules (imports made only for type checking do not count: they do not run),
and no arrow from a lower layer to a higher one."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from devtools.pulumi_stack import REPO

PACKAGES = ("lattigo_fleet", "providers", "emulator", "devtools", "bench", "tests")
# Who may not import whom: (importer prefix, forbidden prefix, why).
FORBIDDEN = [
    ("lattigo_fleet", "providers", "the library is below the Pulumi provider that uses it"),
    # (the demo and `lattigo-fleet emulator` run the emulator: lattigo_fleet.demo and .cli, allowed below)
    ("lattigo_fleet", "emulator", "the product depends on its test double only to run it (demo, cli)"),
    ("lattigo_fleet", "tests", "the product never depends on its tests"),
    ("lattigo_fleet", "devtools", "the product never depends on its development tools"),
    ("lattigo_fleet", "bench", "the product never depends on its benchmarks"),
    ("providers", "tests", "the provider never depends on the tests"),
    ("emulator", "tests", "the emulator never depends on the tests"),
    ("emulator", "devtools", "the emulator never depends on the development tools"),
    ("devtools", "tests", "the tools are below the tests that use them"),
    ("devtools", "bench", "the tools are below the benchmarks that use them"),
    ("bench", "tests", "benchmarks and tests share devtools/, never each other"),
    ("tests", "bench", "benchmarks and tests share devtools/, never each other"),
    ("providers", "emulator", "the provider never depends on the emulator"),
    ("emulator", "lattigo_fleet", "the emulator implements the documents, not our client"),
    ("lattigo_fleet.client", "lattigo_fleet.fleetfile", "the client knows the API, not fleet.yaml"),
    ("lattigo_fleet.client", "lattigo_fleet.planner", "the client is below the planner"),
    ("lattigo_fleet.vocabulary", "lattigo_fleet.", "the API's words import nothing"),
    ("lattigo_fleet.fleetfile", "lattigo_fleet.client", "the fleet file's model is independent of the wire"),
    ("lattigo_fleet.usage", "lattigo_fleet.commands", "the usage report is below the command that prints it"),
    ("lattigo_fleet.terminal", "lattigo_fleet.", "tables and progress bars know nothing of the product"),
    ("lattigo_fleet.suggest", "lattigo_fleet.", "the did-you-mean imports nothing"),
]


# The ships-with-it exceptions: the demo and the `emulator` subcommand start the embedded emulator. And the
# bench's own unit tests, which test the bench's code (its report, its baseline program), not the product.
ALLOWED = {
    ("lattigo_fleet.demo", "emulator"),
    ("lattigo_fleet.cli", "emulator"),
    ("tests.unit.test_bench_fleet", "bench"),
    ("tests.unit.test_bench_trivial", "bench"),
    ("tests.unit.test_bench_shards", "bench"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` is an arrow to the submodule; `from pkg import name`, to pkg.
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t for t in subs if t in modules] or [node.module]
                if len(targets) < len(subs) and node.module not in targets:
                    targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                root = target.split(".")[0]
                if root in PACKAGES and target != name:
                    graph[name].add(target if target in modules else target.rsplit(".", 1)[0])
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    package_graph: dict[str, set[str]] = defaultdict(set)
    for a, targets in graph.items():
        for b in targets:
            package_graph[a].add(b)
    assert _cycles(package_graph) == []


def test_no_arrow_from_a_lower_layer_to_a_higher_one() -> None:
    wrong = [
        f"{a} imports {b}: {why}"
        for a, targets in import_graph().items()
        for b in targets
        for low, high, why in FORBIDDEN
        if (a == low or a.startswith(low + "."))
        and (b == high.rstrip(".") or b.startswith(high if high.endswith(".") else high + "."))
        and not b.startswith(low)
        and (a, high) not in ALLOWED
    ]
    assert wrong == []
