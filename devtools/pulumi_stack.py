"""Drive the real `pulumi` CLI against a throwaway project and a local file backend.

No mocks: every call runs the pinned Pulumi CLI (built by scripts/ensure-pulumi.sh), which starts the
language host and the dynamic-provider plugin exactly as `pulumi up` does for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lattigo_fleet.engine_settings import ENGINE_ENV

REPO = Path(__file__).resolve().parents[1]
TEST_PASSPHRASE = "lattigo-fleet-demo"  # the documented default for demo and test stacks


def pulumi_bin_dir() -> str:
    """The directory holding the pinned CLI (building it on first use on this machine)."""
    out = subprocess.run([str(REPO / "scripts" / "ensure-pulumi.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


@dataclass
class PulumiResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        """`preview --json`/`stack output --json`: one JSON document."""
        return json.loads(self.stdout)

    @property
    def events(self) -> list[dict[str, Any]]:
        """`up/refresh/destroy --json`: the engine's event stream, one JSON object per line."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    @property
    def diagnostics(self) -> list[dict[str, Any]]:
        """Diagnostics a user would see (errors, warnings, infos), from the event stream or the JSON document."""
        try:
            if self.stdout.lstrip().startswith("{") and "\n{" not in self.stdout.strip():
                return [d for d in self.json.get("diagnostics") or [] if d.get("severity") != "debug"]
        except ValueError:
            pass
        found: list[dict[str, Any]] = []
        for event in self.events if self.stdout.lstrip().startswith("{") else []:
            diag = event.get("diagnosticEvent")
            if diag and diag.get("severity") != "debug":
                found.append(diag)
        return found

    @property
    def output(self) -> str:
        """Everything printed, plus the diagnostics' messages unescaped (for --json runs)."""
        messages = "\n".join(d.get("message", "") for d in self.diagnostics)
        return self.stdout + self.stderr + messages

    def check(self) -> PulumiResult:
        if self.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(self.args)} exited {self.returncode}\n--- stdout\n{self.stdout[-6000:]}"
                f"\n--- stderr\n{self.stderr[-4000:]}"
            )
        return self


class PulumiStack:
    """A stack of a project directory, with its own file backend and PULUMI_HOME under `root`."""

    # Set only by the `fleet_stack` fixture (tests/e2e/conftest.py): write_fleet(text) sets its fleet.yaml.
    write_fleet: Callable[[str], None]

    def __init__(self, project_dir: Path, root: Path, name: str = "test", *, bin_dir: str, init: bool = True) -> None:
        self.project_dir = Path(project_dir)
        self.root = Path(root)
        self.name = name
        self.bin_dir = bin_dir
        backend = root / "backend"
        home = root / "pulumi-home"
        backend.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_BACKEND_URL": backend.as_uri(),
            "PULUMI_HOME": str(home),
            "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "NO_COLOR": "1",
            **ENGINE_ENV,  # as users run it (`make env`, docs/scale.md): linear in the fleet
        }
        for var in ("LATTIGO_ENDPOINT", "LATTIGO_KEY_NAME", "LATTIGO_API_KEY"):
            self.env.pop(var, None)
        if init:
            self.run("stack", "init", name).check()

    def copy_to(self, root: Path) -> PulumiStack:
        """A new stack with this one's project, backend and config, under `root`: what `stack init` and the
        `config set`s made, in a file copy instead of one `pulumi` run each (the test suite makes ~100 stacks).
        The file backend and the stack's config file hold no path of their own, so the copy is independent."""
        shutil.copytree(self.root, root, symlinks=True)
        project_dir = root / self.project_dir.relative_to(self.root)
        stack = PulumiStack(project_dir, root, self.name, bin_dir=self.bin_dir, init=False)
        # Selected, as `stack init` leaves it, for the commands a test runs in the project without --stack.
        stack.run("stack", "select", self.name).check()
        return stack

    def run(self, *args: str, timeout: float = 900) -> PulumiResult:
        argv = list(args)
        if args and args[0] != "version" and args[:2] not in (("stack", "init"), ("stack", "ls"), ("stack", "select")):
            argv += ["--stack", self.name]
        argv += ["--non-interactive"]
        proc = subprocess.run(
            ["pulumi", *argv], cwd=self.project_dir, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        return PulumiResult(argv, proc.returncode, proc.stdout, proc.stderr)

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        self.run("config", "set", key, value, *(["--secret"] if secret else [])).check()

    def set_configs(self, plain: dict[str, str], secret: dict[str, str] | None = None) -> None:
        """Several config values in one `pulumi config set-all`."""
        args = [arg for key, value in plain.items() for arg in ("--plaintext", f"{key}={value}")]
        args += [arg for key, value in (secret or {}).items() for arg in ("--secret", f"{key}={value}")]
        self.run("config", "set-all", *args).check()

    def up(self, *extra: str) -> PulumiResult:
        return self.run("up", "--yes", "--skip-preview", "--json", *extra)

    def step_ops(self, result: PulumiResult, type_suffix: str = "") -> dict[str, str]:
        """For a `--json` up: resource name -> the operation its step did (create, update, same, ...)."""
        ops: dict[str, str] = {}
        for event in result.events:
            step = event.get("resOutputsEvent") or event.get("resOpFailedEvent")
            if step and "metadata" in step and step["metadata"]["type"].endswith(type_suffix):
                urn = step["metadata"]["urn"]
                ops[urn.rsplit("::", 1)[-1]] = step["metadata"]["op"] + ("-failed" if "status" in step else "")
        return ops

    def preview(self, *extra: str) -> PulumiResult:
        return self.run("preview", *extra)

    def preview_json(self, *extra: str) -> PulumiResult:
        return self.run("preview", "--json", *extra)

    def refresh(self, *extra: str) -> PulumiResult:
        return self.run("refresh", "--yes", *extra)

    def destroy(self, *extra: str) -> PulumiResult:
        return self.run("destroy", "--yes", *extra)

    def outputs(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.run("stack", "output", "--json").check().json
        return doc

    def export(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.run("stack", "export").check().json
        return doc

    def resources(self, type_suffix: str = "") -> list[dict[str, Any]]:
        deployment = self.export()["deployment"]
        return [r for r in deployment.get("resources") or [] if r["type"].endswith(type_suffix)]


class StackFactory(Protocol):
    """The `stack_factory` fixture: make(main_py=None, name="test") -> PulumiStack in a fresh project."""

    def __call__(self, main_py: str | None = None, name: str = "test") -> PulumiStack: ...


def make_project(directory: Path, main_py: str | None = None, name: str = "lattigo-fleet-test") -> Path:
    """A project directory using the repo's virtualenv. The program is the real one, with the repo's own
    Pulumi.yaml (its options and config declarations are part of what is tested), unless `main_py` is given:
    then a minimal project named `name`."""
    directory.mkdir(parents=True, exist_ok=True)
    if main_py is None:
        project = (REPO / "Pulumi.yaml").read_text()
        assert "virtualenv: .venv\n" in project
        venv = f"virtualenv: {REPO / '.venv'}\n"
        (directory / "Pulumi.yaml").write_text(project.replace("virtualenv: .venv\n", venv))
        shutil.copy(REPO / "__main__.py", directory / "__main__.py")
    else:
        (directory / "Pulumi.yaml").write_text(
            f"name: {name}\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
            f"    virtualenv: {REPO / '.venv'}\n"
        )
        (directory / "__main__.py").write_text(main_py)
    return directory
