"""docs/performance.md's benchmark figures are the benchmarks' own output (bench/performance_doc.py
writes them).

A reader comparing their run with the document must find the very lines the script prints: every
table of it sits in a block marked with the command that made it, that
command names a script in bench/, and the block holds that script's output with the line saying
on what machine and under what load it ran.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_doc():
    spec = importlib.util.spec_from_file_location("performance_doc", ROOT / "bench" / "performance_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _performance_doc() -> str:
    module = _bench_doc()
    assert module.DOC == ROOT / "docs" / "performance.md"
    return module.DOC.read_text(encoding="utf-8")


def test_every_benchmark_table_is_a_marked_block_of_a_real_script():
    module = _bench_doc()
    section = _performance_doc()
    commands = module.blocks(section)
    assert len(commands) >= 10, f"docs/performance.md lost benchmark blocks: {commands}"
    for command in commands:
        assert (ROOT / "bench" / command.split()[0]).is_file(), f"a block names a missing script: {command}"
    outside = module.BLOCK.sub("", section)
    assert not re.search(r"^\|.*\|$", outside, flags=re.M), "a hand-made table in docs/performance.md"
    for match in module.BLOCK.finditer(section):
        first = match["body"].splitlines()[0] if match["body"] else ""
        assert re.match(r"# \d{4}-\d\d-\d\d, .* CPUs, .*load average", first), \
            f"block of {match['command']} does not say where it ran: {first!r}"


def test_writing_one_block_leaves_the_others_as_they_were():
    module = _bench_doc()
    text = ("intro\n<!-- bench: a.py --runs 3 -->\n```text\nold a\n```\n<!-- /bench -->\nmiddle\n"
            "<!-- bench: b.py -->\n```text\nold b\n```\n<!-- /bench -->\nend\n")
    assert module.blocks(text) == ["a.py --runs 3", "b.py"]
    changed = module.replace(text, "b.py", "new b\nline 2\n")
    assert changed == text.replace("old b\n", "new b\nline 2\n")
    assert module.replace(changed, "missing.py", "x\n") == changed
