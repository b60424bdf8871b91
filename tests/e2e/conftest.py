"""Fixtures for end-to-end tests: the real pulumi CLI, throwaway stacks on a local file backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.pulumi_stack import PulumiStack, StackFactory, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME


@pytest.fixture(scope="session")
def pulumi_bin() -> str:
    return pulumi_bin_dir()


TemplateKey = tuple[str, str | None, str]


@pytest.fixture(scope="session")
def stack_templates() -> dict[TemplateKey, PulumiStack]:
    """Stacks made once per session (`stack init`, config), copied for each test (PulumiStack.copy_to)."""
    return {}


@pytest.fixture
def stack_factory(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pulumi_bin: str,
    stack_templates: dict[TemplateKey, PulumiStack],
) -> StackFactory:
    """make(main_py=None, name="test") -> PulumiStack in a fresh project under tmp_path."""
    made: list[PulumiStack] = []

    def make(main_py: str | None = None, name: str = "test") -> PulumiStack:
        key: TemplateKey = ("plain", main_py, name)
        if key not in stack_templates:
            root = tmp_path_factory.mktemp("stack-template")
            stack_templates[key] = PulumiStack(make_project(root / "project", main_py), root, name, bin_dir=pulumi_bin)
        stack = stack_templates[key].copy_to(tmp_path / f"stack-{len(made)}")
        made.append(stack)
        return stack

    return make


@pytest.fixture
def admin(fresh_emulator: EmulatorServer) -> AdminClient:
    return AdminClient(fresh_emulator.base_url)


@pytest.fixture
def fleet_stack(
    stack_factory: StackFactory,
    fresh_emulator: EmulatorServer,
    tmp_path: Path,
    stack_templates: dict[TemplateKey, PulumiStack],
) -> PulumiStack:
    """A stack of the real program pointed at the emulator; write_fleet(text) sets its fleet.yaml."""
    key: TemplateKey = ("fleet", fresh_emulator.base_url, "test")
    if key not in stack_templates:
        template = stack_factory()
        template.set_configs(
            {
                "lattigo:endpoint": fresh_emulator.base_url,
                "lattigo:keyName": EMULATOR_KEY_NAME,
                # A wide merge window makes "concurrent calls share one request" deterministic enough to assert on.
                "lattigo-fleet:batchWindowMs": "400",
                "lattigo-fleet:activationTimeout": "60",
            },
            secret={"lattigo:apiKey": EMULATOR_API_KEY},
        )
        stack_templates[key] = template
    stack = stack_templates[key].copy_to(tmp_path / "fleet-stack")

    def write_fleet(text: str) -> None:
        (stack.project_dir / "fleet.yaml").write_text(text)

    stack.write_fleet = write_fleet
    return stack
