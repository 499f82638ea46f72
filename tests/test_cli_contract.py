"""`Fleet` and the names `ollamactl` exports are the whole contract between the command line and
the core: no cli module imports an `ollamactl.core` module (at the top, inside a function or under
`if TYPE_CHECKING:` alike), every exported name is seen by type checkers as what it is at run
time, and `from ollamactl import X` imports X's home and nothing heavier."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import ollamactl

PACKAGE = Path(__file__).resolve().parent.parent / "ollamactl"
# What cli modules may import of ollamactl besides the exported names: each other, the shared
# rules for model names and times, and the simulator (`ollamactl simulate` runs it).
ALLOWED = ("ollamactl.cli", "ollamactl.model_names", "ollamactl.timefmt", "ollamactl.sim")
# Lines another change (run's and embed's request objects) rewrites: reached through core modules
# until it lands. Each entry must still be there, so the list can only shrink.


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an import anywhere in `tree` names (`from a.b import c`: a.b)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def core_imports(package: Path) -> set[tuple[str, str]]:
    """(cli module, ollamactl module it imports) for each import of ollamactl outside ALLOWED."""
    offences = set()
    for path in sorted((package / "cli").rglob("*.py")):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for target in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            if target.startswith("ollamactl.") and not target.startswith(ALLOWED):
                offences.add((name, target))
    return offences


def test_cli_modules_reach_the_core_only_through_the_exported_names():
    offences = core_imports(PACKAGE)
    assert offences == set(), sorted(offences)


def test_the_check_finds_core_imports_wherever_they_are(tmp_path):
    cli = tmp_path / "ollamactl" / "cli"
    cli.mkdir(parents=True)
    (cli / "planted.py").write_text(
        "from ollamactl import Fleet\nfrom ollamactl.cli import output\nfrom ollamactl.model_names import x\n"
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from ollamactl.core.fleet import Fleet\n"
        "def f():\n    import ollamactl.core.settings\n", encoding="utf-8")
    assert core_imports(tmp_path / "ollamactl") == {("ollamactl.cli.planted", "ollamactl.core.fleet"),
                                                      ("ollamactl.cli.planted", "ollamactl.core.settings")}


def test_type_checkers_see_every_exported_name_as_it_is_at_run_time():
    """The `if TYPE_CHECKING:` block of ollamactl/__init__.py imports each name of `_HOMES` from its
    home, so `from ollamactl import Fleet` is typed (the lazy __getattr__ alone would make it Any)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    seen = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module
                for alias in statement.names:
                    home = statement.module.removeprefix("ollamactl.core.")
                    seen[alias.asname or alias.name] = home if alias.asname is None else f"{home}:{alias.name}"
    assert seen == ollamactl._HOMES
    for name in ollamactl._HOMES:
        assert getattr(ollamactl, name) is not None


def test_an_exported_name_imports_its_home_and_nothing_heavier():
    script = ("import sys\n"
              "from ollamactl import ExitCode, STRATEGIES, Instance, checked_number, UsageError\n"
              "print(sorted(m for m in sys.modules if m.startswith('ollamactl.core.fleet')"
              " or m.split('.')[0] in ('httpx', 'asyncio', 'tomlkit', 'rich', 'typer')))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
