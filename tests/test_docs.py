"""The README stays a newcomer's page and the docs hold together: every relative link leads to a
file and a heading that exist, each fact has one home, and every ```sh example is either run by the
docs test or kept from it for a stated reason."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from doc_shell import NOT_RUN, RUN, sh_blocks

from ollamactl.core.settings import DEFAULTS

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300
FIRST_SCREEN = 24  # lines: a terminal's height

_FENCE = re.compile(r"^```.*?^```[^\n]*$", flags=re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without fenced blocks and inline code, where brackets and '#' are not markdown."""
    return re.sub(r"`[^`\n]*`", "", _FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the document's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated one suffixed -1, -2, ..."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _FENCE.sub("", text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, count = slug, 0
        while candidate in found:
            count += 1
            candidate = f"{slug}-{count}"
        found.add(candidate)
    return found


def relative_links(path: Path) -> list[str]:
    return [target for target in _LINK.findall(prose(path.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # https:, mailto:


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(path):
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_file():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with that anchor in {linked.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_the_link_checker_sees_broken_files_and_anchors(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## The `exec`: part\n\n[ok](#the-exec-part) [file](b.md#x)\n"
                                   "```sh\n# not a heading [no](missing.md)\n```\n`[code](missing.md)`\n")
    (tmp_path / "b.md").write_text("## X\n")
    assert relative_links(tmp_path / "a.md") == ["#the-exec-part", "b.md#x"]
    assert anchors((tmp_path / "a.md").read_text()) == {"title", "the-exec-part"}
    assert anchors("## Same\n## Same\n") == {"same", "same-1"}


def test_the_readme_is_short_and_links_the_docs():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, \
        f"README.md has {len(text.splitlines())} lines; move detail into docs/ (at most {README_MAX_LINES})"
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(README)}
    unlinked = [path.name for path in DOCUMENTS if path != README and path.resolve() not in linked]
    assert not unlinked, f"README.md links no way to {unlinked}"


def test_the_first_screen_says_what_it_is_and_how_to_start():
    first_screen = README.read_text(encoding="utf-8").splitlines()[:FIRST_SCREEN]
    opening = "\n".join(first_screen).split("```sh\n", 1)
    assert len(opening) == 2 and opening[0].strip().count("\n") >= 2, "a title and what it is come first"
    block, after = opening[1].split("```", 1)
    assert len([line for line in block.splitlines() if line.strip()]) == 2, "the two commands"
    assert "The first" in after and "The second" in after, "one line on what each command does"


def test_the_documented_settings_are_the_codes_defaults():
    """docs/registry.md is the one page that writes the defaults down: they must be the code's."""
    text = (ROOT / "docs" / "registry.md").read_text(encoding="utf-8")
    [block] = [block for block in re.findall(r"^```toml\n(.*?)^```", text, flags=re.M | re.S) if "[settings]" in block]
    assert tomllib.loads(block)["settings"] == DEFAULTS


def test_each_fact_has_one_home():
    texts = {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8") for path in DOCUMENTS}
    exit_tables = [name for name, text in texts.items() if re.search(r"^\| 130 \|", text, flags=re.M)]
    assert exit_tables == ["docs/output.md"], exit_tables
    for key in DEFAULTS:
        homes = [name for name, text in texts.items() if re.search(rf"^{key} = ", text, flags=re.M)]
        assert homes == ["docs/registry.md"], f"the default of {key} is written in {homes}"
    ports = [name for name, text in texts.items() if "default port, 11434" in text]
    assert ports == ["docs/registry.md"], ports


def test_every_shell_example_is_run_or_kept_from_the_run_for_a_reason():
    with_shell = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS
                  if sh_blocks(path.read_text(encoding="utf-8"))}
    assert not set(RUN) & set(NOT_RUN)
    unsaid = with_shell - set(RUN) - set(NOT_RUN)
    assert not unsaid, f"say in tests/doc_shell.py whether the docs test runs {unsaid}"
    assert all((ROOT / name).is_file() for name in [*RUN, *NOT_RUN])
    # Examples written for a real network or the system must never run: tests stay on loopback.
    assert {"docs/discover.md", "docs/metrics.md"} <= set(NOT_RUN)
