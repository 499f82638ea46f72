"""No function in ollamactl/ takes 10 or more parameters (issue 24: `run` took 19, written three
times, and 16 functions took 10 or more): a request travels as one object (GenerateRequest,
EmbedRequest, routing.Request, registry.edits.NewInstance, ...) instead of loose parameters through
every layer.

The exceptions are the command line's own declarations: a Typer command (`@app.command()`), whose
parameters are its options, and the Typer-free body that the launcher's fast route and the Typer
command both call with those same keywords (cli/commands.py BODIES). A body must take exactly its
declaration's parameters, so the exception cannot hide anything else.
"""

from __future__ import annotations

import ast
import inspect
import pathlib

import typer
from typer.main import get_command

from ollamactl.cli.app import app
from ollamactl.cli.commands import BODIES, body

LIMIT = 10
PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "ollamactl"


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The names a call may pass (positional and keyword; not *args/**kwargs), less self and cls."""
    arguments = node.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    return [name for name in names if name not in ("self", "cls")]


def is_typer_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
               and isinstance(d.func.value, ast.Name) and d.func.value.id == "app" for d in node.decorator_list)


def wide_functions() -> list[str]:
    """`path:line name (count)` of every function with LIMIT or more parameters, declarations aside."""
    bodies = {(f"cli/{module.replace('.', '/')}.py", function)
              for module, function in (target.split(":") for target in BODIES.values())}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            count = len(parameters(node))
            if count >= LIMIT and not is_typer_command(node) and (relative, node.name) not in bodies:
                found.append(f"{relative}:{node.lineno} {node.name} ({count})")
    return found


def test_no_function_takes_ten_or_more_parameters_but_the_command_line_declarations():
    assert wide_functions() == []


def test_the_counter_sees_a_wide_function(tmp_path):
    """The check can fail: a function of ten parameters is counted (self aside, keyword-only in)."""
    tree = ast.parse("class C:\n    def f(self, a, b, c, d, e, /, f, g, *args, h, i, j, **kw): ...\n")
    [method] = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    assert len(parameters(method)) == LIMIT and not is_typer_command(method)


def test_each_body_takes_exactly_its_typer_declarations_parameters():
    group = get_command(app)
    root = typer.Context(group, info_name="ollamactl")
    for command, target in BODIES.items():
        declared = [param.name for param in group.get_command(root, command).params]
        taken = list(inspect.signature(body(command)).parameters)
        assert sorted(taken) == sorted(declared), (command, target)
