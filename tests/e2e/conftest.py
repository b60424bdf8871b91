"""Fixtures for end-to-end tests: the real pulumi CLI, throwaway stacks on a local file backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME
from tests.e2e.fleets import Admin
from tests.e2e.harness import PulumiStack, StackFactory, make_project, pulumi_bin_dir


@pytest.fixture(scope="session")
def pulumi_bin() -> str:
    return pulumi_bin_dir()


@pytest.fixture
def stack_factory(tmp_path: Path, pulumi_bin: str) -> StackFactory:
    """make(main_py=None, name="test") -> PulumiStack in a fresh project under tmp_path."""
    made: list[PulumiStack] = []

    def make(main_py: str | None = None, name: str = "test") -> PulumiStack:
        root = tmp_path / f"stack-{len(made)}"
        stack = PulumiStack(make_project(root / "project", main_py), root, name, bin_dir=pulumi_bin)
        made.append(stack)
        return stack

    return make


@pytest.fixture
def admin(fresh_emulator: EmulatorServer) -> Admin:
    return Admin(fresh_emulator.base_url)


@pytest.fixture
def fleet_stack(stack_factory: StackFactory, fresh_emulator: EmulatorServer) -> PulumiStack:
    """A stack of the real program pointed at the emulator; write_fleet(text) sets its fleet.yaml."""
    stack = stack_factory()
    stack.set_config("lattigo:endpoint", fresh_emulator.base_url)
    stack.set_config("lattigo:keyName", EMULATOR_KEY_NAME)
    stack.set_config("lattigo:apiKey", EMULATOR_API_KEY, secret=True)
    # A wide merge window makes "concurrent calls share one request" deterministic enough to assert on.
    stack.set_config("lattigo-fleet:batchWindowMs", "400")
    stack.set_config("lattigo-fleet:activationTimeout", "60")

    def write_fleet(text: str) -> None:
        (stack.project_dir / "fleet.yaml").write_text(text)

    stack.write_fleet = write_fleet
    return stack
