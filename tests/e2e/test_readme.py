"""The guide "Using it on your own account" (docs/own-account.md, linked from the README) works as written,
in a plain shell on a fresh machine.

The section's ```sh block is run line by line in one bash, as a user pastes it into a shell of their clone
after `make setup`: with no `pulumi` or `lattigo-fleet` on PATH, a fresh HOME and ~/.pulumi (so no login)
and only the user's own PULUMI_CONFIG_PASSPHRASE. The "clone" is a temporary copy of what the block
needs (the Makefile with its pinning script and tools module, the Pulumi project, fleet.yaml) whose `.venv`
is the repo's, so nothing is written into the repo and nothing is rebuilt: the Pulumi CLI comes from the
real per-machine cache that scripts/ensure-pulumi.sh chose.

Substituted, and nothing else: the endpoint, key name and API key placeholders (the emulator's, seeded
with the demo account that the shipped fleet.yaml declares), `--non-interactive` for `preview` and `up`,
and `--yes` for `up`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from devtools.pulumi_stack import REPO
from emulator.server import EmulatorServer

GUIDE = REPO / "docs" / "own-account.md"
SECTION = "Using it on your own account"
ENDPOINT_PLACEHOLDER = "https://api.lattigo.com"
USER_PASSPHRASE = "a passphrase of the user's own"  # deliberately not the demo default
# What a clone needs for the block: `make -s env` (Makefile, its venv stamp inputs, the pinning script and
# the tools module it hashes) and the Pulumi project. Copied with their times, so the venv stamp stays fresh.
CLONE_FILES = (
    "Makefile",
    "constraints.txt",
    "pyproject.toml",
    "scripts",
    "tools/engine",
    "Pulumi.yaml",
    "__main__.py",
    "fleet.yaml",
    "fleet.d",
)


def section_lines(path: Path, heading: str) -> list[str]:
    """The lines under the Markdown heading `heading` (of any level) in `path`, up to the next heading; a `#`
    at the start of a line inside a fenced block is a shell comment, not a heading."""
    lines = path.read_text().splitlines()
    headings = [i for i, line in enumerate(lines) if re.fullmatch(rf"#+ {re.escape(heading)}", line)]
    assert len(headings) == 1, f"{path.name} has {len(headings)} heading(s) {heading!r}, expected one"
    section: list[str] = []
    fenced = False
    for line in lines[headings[0] + 1 :]:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            break
        section.append(line)
    return section


def sh_block(path: Path, heading: str) -> list[str]:
    """The one ```sh block under `heading` in the Markdown file `path`: its lines, without blank lines and
    comment lines."""
    section = "\n".join(section_lines(path, heading)) + "\n"
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) == 1, f"expected one ```sh block under {heading!r} in {path.name}, found {len(blocks)}"
    return [line for line in blocks[0].splitlines() if line.strip() and not line.lstrip().startswith("#")]


def substitute(lines: list[str], endpoint: str, key_name: str, api_key: str) -> list[str]:
    """Only the allowed substitutions; each placeholder must be there exactly once."""
    text = "\n".join(lines)
    for placeholder, value in ((ENDPOINT_PLACEHOLDER, endpoint), ("<key_name>", key_name), ("<api_key>", api_key)):
        assert text.count(placeholder) == 1, f"placeholder {placeholder!r} is not in the guide's block exactly once"
        text = text.replace(placeholder, value)
    text, previews = re.subn(r"^pulumi preview\b", "pulumi preview --non-interactive", text, flags=re.M)
    text, ups = re.subn(r"^pulumi up\b", "pulumi up --yes --non-interactive", text, flags=re.M)
    assert previews >= 1 and ups == 1, "the block should preview, then run one `pulumi up`"
    return text.splitlines()


def real_cache_dir() -> Path:
    """Where scripts/ensure-pulumi.sh keeps the built CLI for this machine (the real HOME's default)."""
    if os.environ.get("LATTIGO_FLEET_CACHE"):
        return Path(os.environ["LATTIGO_FLEET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lattigo-fleet"


def plain_env(home: Path) -> dict[str, str]:
    """The environment of a fresh shell: no pinned pulumi, no project virtualenv, no Pulumi settings."""
    venv_bin = (REPO / ".venv" / "bin").resolve()
    dirs = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or (Path(d) / "pulumi").exists() or (Path(d) / "lattigo-fleet").exists():
            continue
        if Path(d).resolve() == venv_bin:
            continue
        dirs.append(d)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PULUMI_", "LATTIGO_", "MAKE")) and k not in ("MFLAGS", "VIRTUAL_ENV")
    }
    # Where the machine's caches really are, since HOME moves: the Pulumi CLI build (and, were a build ever
    # needed, Go's caches and pyenv's root), so the test never rebuilds anything.
    extra = {"LATTIGO_FLEET_CACHE": str(real_cache_dir())}
    if (Path.home() / ".pyenv").is_dir():
        extra["PYENV_ROOT"] = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    go = shutil.which("go")
    if go:
        names = ("GOPATH", "GOCACHE", "GOMODCACHE")
        values = subprocess.run([go, "env", *names], capture_output=True, text=True, check=True).stdout.split("\n")
        extra.update({n: v for n, v in zip(names, values, strict=False) if v})
    env.update(extra)
    # A fresh ~/.pulumi. The CLI finds its home through the password database (Go's os/user), not $HOME,
    # so PULUMI_HOME says where it is: without it `pulumi login` would change the real user's login.
    env.update(
        {
            "PATH": os.pathsep.join(dirs),
            "HOME": str(home),
            "PULUMI_HOME": str(home / ".pulumi"),
            "PULUMI_CONFIG_PASSPHRASE": USER_PASSPHRASE,
            "NO_COLOR": "1",
        }
    )
    return env


def make_clone(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in CLONE_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, directory / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, directory / name)
    # Pulumi.yaml's `virtualenv: .venv` is relative: the clone's virtualenv is the one `make setup` built.
    (directory / ".venv").symlink_to(REPO / ".venv", target_is_directory=True)
    return directory


def test_the_own_account_guide_runs_as_written(tmp_path: Path, emulator: EmulatorServer, pulumi_bin: str) -> None:
    emulator.reset("demo")  # the demo account: what the shipped fleet.yaml is written against
    assert emulator.key_name is not None and emulator.api_key is not None  # narrows: the fixture sets both
    lines = substitute(sh_block(GUIDE, SECTION), emulator.base_url, emulator.key_name, emulator.api_key)
    clone = make_clone(tmp_path / "clone")
    home = tmp_path / "home"
    home.mkdir()
    env = plain_env(home)
    for tool in ("pulumi", "lattigo-fleet"):
        assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is on the plain PATH: not a fresh shell"
    assert (real_cache_dir() / "pulumi").is_dir(), "the pinned CLI should be in the machine's cache already"

    # One bash for the whole block (eval'd exports must reach the later lines), reporting each line's exit.
    checks = ["pulumi preview --non-interactive --refresh --expect-no-changes"]  # the account now matches
    script = []
    for i, line in enumerate(lines + checks):
        script += [line, f'__rc=$?; echo "@@ line {i} exit $__rc" >&2; [ "$__rc" -eq 0 ] || exit 100']
    try:
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=1200,
        )
        out = proc.stdout
        exits = [int(code) for code in re.findall(r"^@@ line \d+ exit (\d+)$", out, re.M)]
        failed = next((i for i, code in enumerate(exits) if code), None)
        where = f"`{(lines + checks)[failed]}` exited {exits[failed]}" if failed is not None else "bash itself"
        assert proc.returncode == 0 and len(exits) == len(lines + checks), f"{where}\n{out[-8000:]}"

        # The block used the emulator it was given: the up changed the account...
        mutating = [
            r for r in emulator.requests_log() if r["method"] != "GET" and not r["path"].startswith("/_emulator")
        ]
        assert mutating, out[-4000:]
        # ...the state went where the guide said, and the API key is in the stack file only encrypted.
        assert (clone / ".state" / ".pulumi").is_dir()
        assert (clone / ".state").as_uri() in (home / ".pulumi" / "credentials.json").read_text()
        stack_file = (clone / "Pulumi.prod.yaml").read_text()
        assert "lattigo:apiKey" in stack_file and emulator.api_key not in stack_file
    finally:
        (clone / ".venv").unlink(missing_ok=True)  # never let a cleanup follow it into the repo's venv
        emulator.reset("empty")
