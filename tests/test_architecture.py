"""The layout's rules, read from the source with `ast` (imports inside functions included):
no import cycle among ollamactl's modules, even counting `if TYPE_CHECKING:` imports; core/ imports
neither cli/, typer nor rich; sim/ imports nothing from core/ or cli/; and each package's __init__
docstring names what is in it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ollamactl"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_of(path: Path, runtime_only: bool) -> set[str]:
    """Every module `path` imports, at any depth; `runtime_only` skips `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if runtime_only and _type_checking_block(node):
            for child in node.orelse:  # type: ignore[attr-defined]
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def graph(runtime_only: bool) -> dict[str, set[str]]:
    """Module -> the ollamactl modules it imports (a package import counts as its __init__)."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges[name] = {target for target in imports_of(path, runtime_only) if target in MODULES and target != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    edges = graph(runtime_only=False)
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_never_imports_the_cli_typer_or_rich():
    offences = []
    for name, path in MODULES.items():
        if name.startswith("ollamactl.core"):
            for target in imports_of(path, runtime_only=False):
                if target.split(".")[0] in ("typer", "rich", "click") or target.startswith("ollamactl.cli"):
                    offences.append(f"{name} imports {target}")
    assert offences == []


def test_the_simulator_imports_nothing_from_core_or_cli():
    offences = [f"{name} imports {target}" for name, path in MODULES.items() if name.startswith("ollamactl.sim")
                for target in imports_of(path, runtime_only=False)
                if target.startswith(("ollamactl.core", "ollamactl.cli"))]
    assert offences == []


def test_only_cli_output_imports_rich():
    importers = {name for name, path in MODULES.items()
                 if any(target.split(".")[0] == "rich" for target in imports_of(path, runtime_only=False))}
    assert importers == {"ollamactl.cli.output"}


def test_nothing_in_core_prints():
    offences = []
    for name, path in MODULES.items():
        if not name.startswith("ollamactl.core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offences.append(f"{name}: print()")
            if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr") and \
                    isinstance(node.value, ast.Name) and node.value.id == "sys":
                offences.append(f"{name}: sys.{node.attr}")
    assert offences == []


def test_every_package_says_what_each_of_its_modules_owns():
    """The layout reads from the folders: each package's __init__ docstring names every module and
    package in it, and no folder holds more than 15 modules."""
    offences = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        folder = init.parent
        members = sorted({p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__")}
                         | {p.parent.name for p in folder.glob("*/__init__.py")})
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        words = set(docstring.replace("`", " ").replace(".", " ").replace("(", " ").replace(",", " ").split())
        offences += [f"{module_name(init)} does not mention {member}" for member in members if member not in words]
        modules = [p for p in folder.glob("*.py") if p.stem != "__init__"]
        if len(modules) > 15:
            offences.append(f"{module_name(init)} holds {len(modules)} modules")
    assert offences == []


def test_the_typer_free_route_never_reaches_typer():
    """Everything the launcher's fast route can import (cli/fast_route.py, the command bodies of
    cli/commands.py, the spec parser, and all they import, inside functions too) imports no Typer
    or Click: `list`, `run`, `health` ... answered there start like a tool. (Rich is imported only
    inside cli/output.py's functions; tests/test_fast_route.py checks that `list` off a terminal
    never loads it.)"""
    from ollamactl.cli.commands import BODIES

    edges = graph(runtime_only=True)
    todo = ["ollamactl.cli.fast_route", "ollamactl.cli.spec_parser",
            *{f"ollamactl.cli.{body.split(':')[0]}" for body in BODIES.values()}]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(edges[name])
    offences = [f"{name} imports {target}" for name in sorted(seen)
                for target in imports_of(MODULES[name], runtime_only=True)
                if target.split(".")[0] in ("typer", "click")]
    assert "ollamactl.cli.registry.quick" in seen and "ollamactl.cli.routing.run_stream" in seen
    assert offences == []
