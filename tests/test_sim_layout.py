"""The simulator's layout, read from ollamactl/sim/ with `ast`: its modules import one another
without a cycle (counting every import: module level, inside functions and under `if TYPE_CHECKING:`),
and no underscore-private name defined in one of its modules is used from another (imported by
name, or read as an attribute: a module's `_helper` or a class's `_field`)."""

from __future__ import annotations

import ast
from pathlib import Path

SIM = Path(__file__).resolve().parent.parent / "ollamactl" / "sim"
PACKAGE = "ollamactl.sim"


def _name(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


TREES = {_name(path): ast.parse(path.read_text(encoding="utf-8")) for path in sorted(SIM.glob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imported_from(node: ast.ImportFrom, module: str) -> str | None:
    """The absolute module a `from ... import` names (relative imports resolved against `module`)."""
    if node.level == 0:
        return node.module
    package = module if module == PACKAGE else module.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def imports(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Sim module -> the sim modules it imports anywhere in its file (a submodule named in
    `from ollamactl.sim import x` counts as that submodule, any other name as the package)."""
    edges: dict[str, set[str]] = {name: set() for name in trees}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _imported_from(node, name) or ""
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in trees else source
                           for alias in node.names]
            edges[name].update(target for target in targets if target in trees and target != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def _defined(tree: ast.Module) -> set[str]:
    """Private names a module defines: top-level functions, classes and assignments, and the members
    of its classes (methods, class attributes, `self._x = ...` in a method)."""
    names: set[str] = set()

    def targets(node: ast.AST) -> list[ast.expr]:
        if isinstance(node, ast.Assign):
            return node.targets
        if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            return [node.target]
        return []

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        names.update(target.id for target in targets(node) if isinstance(target, ast.Name))
        if isinstance(node, ast.ClassDef):
            for member in ast.walk(node):
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(member.name)
                for target in targets(member):
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                    elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                            and target.value.id == "self":
                        names.add(target.attr)
    return {name for name in names if _private(name)}


def _module_names(tree: ast.Module, module: str, trees: dict[str, ast.Module]) -> dict[str, str]:
    """The names under which `module` refers to other sim modules (`import a.b as c`, `from a import b`)."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update({alias.asname or alias.name: alias.name for alias in node.names if alias.name in trees})
        elif isinstance(node, ast.ImportFrom):
            source = _imported_from(node, module)
            bound.update({alias.asname or alias.name: f"{source}.{alias.name}" for alias in node.names
                          if f"{source}.{alias.name}" in trees})
    return bound


def shared_private_names(trees: dict[str, ast.Module]) -> list[str]:
    """`module uses other._name` for each private name of one sim module that another one uses: imported
    by name, read off the other module (`other._name`), or read off anything when only another module
    defines `_name` (an instance of its class: `instance._field`)."""
    defined = {name: _defined(tree) for name, tree in trees.items()}
    found: set[str] = set()
    for name, tree in trees.items():
        modules = _module_names(tree, name, trees)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (_imported_from(node, name) or "") in trees:
                source = _imported_from(node, name)
                found.update(f"{name} imports {source}.{alias.name}" for alias in node.names if _private(alias.name))
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                owner = modules.get(ast.unparse(node.value))
                if owner is not None:
                    found.add(f"{name} uses {owner}.{node.attr}")
                elif node.attr not in defined[name]:
                    owners = sorted(other for other, names in defined.items() if node.attr in names)
                    found.update(f"{name} uses {owner}.{node.attr}" for owner in owners)
    return sorted(found)


def test_the_sim_modules_import_one_another_without_a_cycle():
    groups = cycles(imports(TREES))
    assert groups == [], f"{len(groups)} import cycle(s) among sim modules: {groups}"


def test_no_private_name_of_one_sim_module_is_used_from_another():
    shared = shared_private_names(TREES)
    names = {entry.rsplit(" ", 1)[1] for entry in shared}
    assert shared == [], f"{len(names)} private names shared across sim modules ({len(shared)} uses):\n" + \
        "\n".join(shared)


def test_the_checks_see_what_they_look_for():
    """The readers above would pass on anything if they found nothing: prove they find both faults."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    trees = {
        "ollamactl.sim.a": ast.parse("if TYPE_CHECKING:\n    from ollamactl.sim.b import B\n"
                                     "def f(b):\n    return b._state\n"),
        "ollamactl.sim.b": ast.parse("def g():\n    from ollamactl.sim.a import _helper\n"
                                     "class B:\n    def __init__(self):\n        self._state = 1\n"),
        "ollamactl.sim.c": ast.parse("import ollamactl.sim.a as a\nfrom ollamactl.sim import b\n"
                                     "helper = a._helper\nstate = b._state\n"),
    }
    assert cycles(imports(trees)) == [["ollamactl.sim.a", "ollamactl.sim.b"]]
    assert shared_private_names(trees) == ["ollamactl.sim.a uses ollamactl.sim.b._state",
                                           "ollamactl.sim.b imports ollamactl.sim.a._helper",
                                           "ollamactl.sim.c uses ollamactl.sim.a._helper",
                                           "ollamactl.sim.c uses ollamactl.sim.b._state"]
