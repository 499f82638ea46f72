"""The shell commands of the README and of the docs the tour continues in, as the docs test runs them.

`RUN` names the documents whose commands run, in order, against the README tour's simulated fleet;
every ```sh block of every `## ` section of them is read, except the sections each one lists (with
the reason). A section added later is covered without touching this file. `NOT_RUN` names, with the
reason, the documents whose commands must not run (a real LAN, the system's directories, this very
test suite); tests/test_docs.py holds that every document with a ```sh block is in one or the
other. A block is split into commands: a line ending in a backslash continues, a here-document
(`<<'EOF'`) runs to its end marker, comment-only and blank lines are dropped. A command's trailing
comment (two spaces, `#`) may carry an instruction to the test, in words a reader understands too:

    # exits 4 ...                          the command is expected to exit 4 (default 0)
    # ... Ctrl-C stops it ...              long-running: started in the background and stopped (SIGINT)
                                           at the end, or when the same program (`ollamactl simulate`)
                                           is started again, as a reader restarting terminal 1 does
    # not run by the docs test: REASON     skipped, with the reason (needed: something not installable)

A continued command (lines ending in a backslash) carries its comment on its last line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN: dict[str, dict[str, str]] = {  # document: {section heading: why its commands are not run}
    "README.md": {"": "the opening install-and-run / install-and-test commands (tests/test_readme.py checks them)"},
    "docs/gateways.md": {},
}
NOT_RUN = {
    "docs/cli.md": "generated from --help: its examples name servers that do not exist here (gpu1, ...)",
    "docs/development.md": "installs the project and runs this very test suite",
    "docs/discover.md": "written for a real LAN: tests send nothing outside 127.0.0.0/8",
    "docs/metrics.md": "writes node_exporter's directory under /var and serves a port for a real Prometheus",
}

_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_EXITS = re.compile(r"^exits (\d+)\b")
_SKIP = "not run by the docs test:"


@dataclass
class Command:
    document: str
    section: str
    text: str  # what bash runs (continuations and here-documents included)
    comment: str  # the trailing comment of its first line, without '#'
    expected: int = 0
    background: bool = False
    skip: str | None = None  # the reason, when not run


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) for the text before the first `## ` heading ("") and each `## ` section."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return [("", parts[0])] + [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts), 2)]


def sh_blocks(body: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", body, flags=re.M | re.S)


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment) for a line whose trailing comment starts after two spaces and a '#'."""
    for match in re.finditer(r"\s{2,}#\s?", line):
        before = line[: match.start()]
        try:
            shlex.split(before)
        except ValueError:  # inside quotes: not a comment
            continue
        return before.rstrip(), line[match.end():].strip()
    return line.rstrip(), ""


def commands_of(block: str, section: str, document: str = "README.md") -> list[Command]:
    lines = block.splitlines()
    out: list[Command] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        first, comment = split_comment(line)
        parts = [first]
        while parts[-1].endswith("\\") and index < len(lines):
            last, last_comment = split_comment(lines[index])  # a continued command's comment ends it
            parts.append(last)
            comment = last_comment or comment
            index += 1
        heredoc = _HEREDOC.search(first)
        if heredoc:
            end = heredoc.group(2)
            while index < len(lines):
                parts.append(lines[index])
                index += 1
                if parts[-1].strip() == end:
                    break
        command = Command(document, section, "\n".join(parts), comment)
        exits = _EXITS.match(comment)
        if exits:
            command.expected = int(exits.group(1))
        command.background = "Ctrl-C stops it" in comment
        if _SKIP in comment:
            command.skip = comment.split(_SKIP, 1)[1].strip()
            if not command.skip:
                raise ValueError(f"{document}: {first!r} is marked not run without a reason")
        out.append(command)
    return out


def doc_commands(document: str | None = None, names: set[str] | None = None) -> list[Command]:
    """Every command the docs test runs, in `RUN` order and document order (`document`: only that
    one; `names`: only these sections)."""
    found = []
    for name, not_run in RUN.items():
        if document is not None and name != document:
            continue
        for heading, body in sections((ROOT / name).read_text(encoding="utf-8")):
            if heading in not_run or (names is not None and heading not in names):
                continue
            for block in sh_blocks(body):
                found.extend(commands_of(block, heading, name))
    return found
