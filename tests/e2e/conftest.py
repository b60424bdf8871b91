"""Fixtures for end-to-end tests: the real pulumi CLI, throwaway stacks on a local file backend."""

from __future__ import annotations

import pytest

from tests.e2e.harness import PulumiStack, make_project, pulumi_bin_dir


@pytest.fixture(scope="session")
def pulumi_bin() -> str:
    return pulumi_bin_dir()


@pytest.fixture
def stack_factory(tmp_path, pulumi_bin):
    """make(main_py=None, name="test") -> PulumiStack in a fresh project under tmp_path."""
    made = []

    def make(main_py: str | None = None, name: str = "test") -> PulumiStack:
        root = tmp_path / f"stack-{len(made)}"
        stack = PulumiStack(make_project(root / "project", main_py), root, name, bin_dir=pulumi_bin)
        made.append(stack)
        return stack

    return make
