"""`lattigo-fleet plan`'s arguments and its one-line errors (exit 1, no traceback, nothing on standard output)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from lattigo_fleet.commands import plan

FIXTURES = Path(__file__).parent / "fixtures"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lattigo-fleet plan")
    plan.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_arguments() -> None:
    args = parse("--stack", "prod", "--cwd", "infra", "--json")
    assert (args.stack, args.cwd, args.from_file, args.json) == ("prod", "infra", None, True)
    assert parse("--from", "-").from_file == "-"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no such file"),
        ("{oops", "is not JSON"),
        ('{"name": "not a preview"}', "not the output of `pulumi preview --json`"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, says: str
) -> None:
    path = tmp_path / "preview.json"
    if content is not None:
        path.write_text(content)
    out = io.StringIO()
    assert plan.main(parse("--from", str(path)), out=out) == 1
    err = capsys.readouterr().err
    assert out.getvalue() == ""
    assert err.startswith("lattigo-fleet plan: ") and says in err and err.count("\n") == 1


def test_pulumi_missing_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert plan.main(parse(), out=io.StringIO()) == 1
    assert capsys.readouterr().err == (
        'lattigo-fleet plan: `pulumi` is not on PATH (run `eval "$(make -s env)"` in the clone)\n'
    )


def test_standard_input(capsys: pytest.CaptureFixture[str]) -> None:
    text = (FIXTURES / "changes.json").read_text()
    out = io.StringIO()
    assert plan.main(parse("--from", "-"), out=out, stdin=io.StringIO(text)) == 0
    assert out.getvalue().startswith("## lattigo-fleet plan · stack `ci`")
