"""The README is a front page and the guides are in docs/: every relative link in them leads somewhere.

A link (`[text](target)`, outside code) that is not a URL must name a file or directory of the repository, and
its `#anchor`, if any, a heading of the Markdown file it names, as GitHub makes anchors of headings. Every page
of docs/ is linked from the README or from the docs index, and the README stays short.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devtools.pulumi_stack import REPO

README = REPO / "README.md"
INDEX = REPO / "docs" / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 150  # what a newcomer reads in the first five minutes; the guides are in docs/

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose(text: str) -> str:
    """The page without its fenced blocks and code spans: what is left is what a reader can click."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text()))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (but `-` and `_`), spaces to `-`."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#+ (.*)$", FENCE.sub("", page.read_text()), re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken(page: Path, target: str) -> str | None:
    """Why `target`, a link on `page`, leads nowhere; None when it leads somewhere."""
    if URL.match(target):
        return None  # a URL: not this repository's to check
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    if not dest.is_relative_to(REPO):
        return "outside the repository"
    if not dest.exists():
        return "no such file"
    if anchor:
        if dest.suffix != ".md" or dest.is_dir():
            return "an anchor in a file that is not Markdown"
        if anchor not in anchors(dest):
            return f"no heading #{anchor} in {dest.relative_to(REPO)}"
    return None


def test_the_pages_are_found() -> None:
    names = {page.relative_to(REPO).as_posix() for page in PAGES}
    assert {"README.md", "docs/README.md", "docs/own-account.md", "docs/settings.md", "docs/gitops.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    bad = [f"{target}: {why}" for target in links(page) if (why := broken(page, target))]
    assert bad == []


def test_every_docs_page_is_linked_from_the_readme_or_the_index() -> None:
    linked = {
        (page.parent / target.partition("#")[0]).resolve()
        for page in (README, INDEX)
        for target in links(page)
        if not URL.match(target) and target.partition("#")[0]
    }
    unlinked = [page.relative_to(REPO).as_posix() for page in PAGES if page != README and page not in linked]
    assert unlinked == []


def test_the_readme_links_the_docs_index() -> None:
    assert "docs/README.md" in links(README)


def test_the_readme_stays_a_front_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the detail to docs/"


def test_the_readme_shows_the_gitops_pages_table_of_the_three_workflows() -> None:
    """The front page's table of the three jobs is the GitOps page's, word for word (two copies drift)."""
    table = re.compile(r"^\| job \| runs \| prints \|\n(?:\|.*\n)+", re.M)
    on_readme = table.findall(README.read_text())
    on_gitops = table.findall((REPO / "docs" / "gitops.md").read_text())
    assert len(on_readme) == 1 and on_readme == on_gitops
    assert [row.split(" | ")[0] for row in on_readme[0].splitlines()[2:]] == [
        "| pull request",
        "| merge to main",
        "| nightly",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The approved plan is the applied plan", "the-approved-plan-is-the-applied-plan"),
        ("Engine settings for fleets, and their trade-off", "engine-settings-for-fleets-and-their-trade-off"),
        ("fleet.yaml", "fleetyaml"),
        ("What a killed run leaves, and what recover does", "what-a-killed-run-leaves-and-what-recover-does"),
    ],
)
def test_anchors_are_made_as_github_makes_them(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
