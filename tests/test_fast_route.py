"""The Typer-free route (cli/fast_route.py): the spec parser gives a command's body exactly what
Typer gives it, or leaves the command line to Typer; and the commands it answers load no Typer.

Parity: for a matrix of command lines, each command's body is replaced by a recorder; the Typer
command (in-process) records what it passes, and the spec parser's answer must be the same, or
None (Typer's turn). A command line Typer refuses is never answered by the spec parser.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_helpers import REPORT_MODULES, RUNNER, make_runner

from ollamactl.cli import fast_route, spec_parser
from ollamactl.cli.app import app
from ollamactl.cli.command_specs import SPECS
from ollamactl.cli.commands import BODIES
from ollamactl.core.fleet import Fleet

VECTORS = {
    "list": [[], ["--json"], ["--json", "--json"], ["--json=1"], ["--jsn"], ["x"], ["--"], ["-h"], ["--help"],
             ["-j"]],
    "paths": [[], ["--json"], ["--json", "extra"], ["--js"]],
    "health": [[], ["--json"], ["gpu1", "gpu2", "--json"], ["--timeout", "2", "--json", "-a"], ["--all"],
               ["-a", "gpu1"], ["--watch", "--interval", "0.5"], ["--interval=1e1"], ["--timeout", "x"],
               ["--timeout"], ["-aj"], ["--json", "--", "gpu1"], ["--timeout", "-1"]],
    "refresh": [[], ["--json"], ["gpu1"], ["--json=yes"]],
    "models": [[], ["--json"], ["--diff"], ["--diff", "--json"], ["--diff=1"], ["x"]],
    "ps": [[], ["--json"], ["gpu1", "gpu2"], ["gpu1", "--json"], ["--json", "--", "gpu1"], ["--json=1"], ["-j"]],
    "run": [
        ["m"], ["m", "hello", "world"], ["llama3.2", "-"], ["m", "--chat", "hi"], ["m", "hi", "--chat"],
        ["m", "--system", "be brief", "hi"], ["m", "--system=be brief"], ["m", "--system", "--chat"],
        ["m", "-o", "temperature=0.2", "-o", "seed=1"], ["m", "-otemperature=0.2"], ["m", "--option=a=b"],
        ["m", "--think"], ["m", "--no-think"], ["m", "--think", "--no-think"], ["m", "--tries", "5"],
        ["m", "--tries=5"], ["m", "--tries", "x"], ["m", "--tries", "2.5"], ["m", "--tries", " 7 "],
        ["m", "--tries", "1_0"], ["m", "--wait", "0.5"], ["m", "--wait", "inf"], ["m", "--wait", "nan"],
        ["m", "--wait", "-1"], ["m", "--connect-timeout", "1e-3", "--first-byte-timeout", "2"],
        ["m", "-s", "weighted", "--key", "user-7"], ["m", "-sweighted"], ["m", "--strategy"], ["m", "-v"],
        ["m", "-vv"], ["m", "-v", "--verbose"], ["m", "--json", "--no-stream", "--format", "json"],
        ["m", "--keep-alive", "10m", "--instance", "gpu1"], ["m", "--strict"], ["m", "--", "-x"],
        ["m", "-x"], ["m", "-5"], [], ["--chat"], ["m", "--help"], ["m", "-h"], ["m", "--chat=yes"],
        ["m", "hi", "--install-completion"], ["", "hi"], ["m", "", "x"], ["m", "--format"], ["m", "--tries"],
    ],
    "pick": [[], ["-m", "llama3.2"], ["--model=llama3.2", "-n", "3"], ["-mllama3.2"], ["-n", "x"], ["-n"],
             ["--count", "2.5"], ["-t", "embedding", "-s", "weighted", "--key", "user-7"], ["--format", "env"],
             ["-f", "json", "--strict", "--explain", "--refresh"], ["--strict=yes"], ["--mod", "x"], ["extra"],
             ["-z"], ["--", "x"], ["-h"], ["--help"], ["-n", "-1"], ["--key", "-x"]],
    "embed": [["m"], ["m", "a", "b c"], ["m", "--file", "-"], ["m", "--file=docs.txt", "--ndjson"],
              ["m", "--batch-size", "8", "--per-instance", "3", "x"], ["m", "--batch-size", "8.5"],
              ["m", "--allow-mixed", "--instance", "gpu1", "--strict", "-v", "x"], ["m", "--wait", "2", "x"],
              ["m", "--connect-timeout", "1", "--first-byte-timeout", "9", "x"], ["m", "--file"], ["--ndjson"],
              ["m", "-vx"], ["m", "--", "-a"]],
}
# Ordinary command lines the fast route must answer itself (else it would be a route nobody takes).
ANSWERED = {"list": [[], ["--json"]], "paths": [[], ["--json"]], "health": [["--json"], ["gpu1", "-a"]],
            "refresh": [[]], "models": [["--json"], ["--diff"]], "ps": [[], ["gpu1", "--json"]],
            "run": [["m", "hello", "world"], ["m", "--chat", "-o", "seed=1", "--tries", "5", "hi"]],
            "embed": [["m", "a", "b c"], ["m", "--file", "-", "--ndjson"]],
            "pick": [[], ["-m", "llama3.2", "-n", "3", "--format", "env"], ["--explain", "-s", "weighted"]]}


def typer_call(monkeypatch, command: str, argv: list[str]) -> tuple[int, dict | None]:
    """(exit code, the keyword arguments the Typer command passed to the body, or None)."""
    module_name, function = BODIES[command].split(":")
    module = sys.modules.get(f"ollamactl.cli.{module_name}") or __import__(f"ollamactl.cli.{module_name}",
                                                                           fromlist=["_"])
    seen: list[dict] = []
    with monkeypatch.context() as patch:  # undoes this recorder only, not the test's isolated_env
        patch.setattr(module, function, lambda **values: seen.append(values))
        result = RUNNER.invoke(app, [command, *argv])
    return result.exit_code, seen[0] if seen else None


def test_every_fast_command_has_a_parity_matrix():
    assert set(VECTORS) == set(BODIES) == set(SPECS)


@pytest.mark.parametrize("command", sorted(VECTORS))
def test_the_spec_parser_gives_the_body_what_typer_gives_it_or_leaves_the_line_to_typer(monkeypatch, command):
    for argv in VECTORS[command] + ANSWERED[command]:
        fast = spec_parser.parse(SPECS[command], argv)
        assert fast is not None or argv not in ANSWERED[command], argv
        code, typer_values = typer_call(monkeypatch, command, argv)
        if fast is not None:
            assert code == 0 and typer_values is not None, (argv, "Typer refuses what the fast route accepts")
            assert repr(fast) == repr(typer_values), argv  # types too (1 vs 1.0), and nan


def test_help_completion_and_usage_errors_go_to_typer(monkeypatch):
    for argv in (["list", "--help"], ["run", "m", "--tries", "x"], ["list", "--jsn"]):
        assert fast_route.main(argv) is None, argv
    monkeypatch.setenv("_OLLAMACTL_COMPLETE", "bash_complete")
    assert fast_route.main(["list"]) is None


def test_a_usage_error_reads_the_same_whichever_route_was_tried():
    """The launcher tries the fast route first; a line it cannot answer gets Typer's one-line error."""
    result = subprocess.run([sys.executable, "-m", "ollamactl", "run", "m", "--tries", "x"], capture_output=True,
                            text=True, env=os.environ.copy(), timeout=60)
    typer = make_runner().invoke(app, ["run", "m", "--tries", "x"])
    assert (result.returncode, result.stderr) == (typer.exit_code, typer.stderr) == (2, typer.stderr)
    assert result.stderr.startswith("ollamactl: error: ") and result.stderr.count("\n") == 1


def _imports_of_a_real_start(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    script = REPORT_MODULES + f"from ollamactl.cli.launcher import main; main({list(args)!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, env=os.environ.copy())
    return result, {name.split(".")[0] for name in result.stderr.split()}


def test_commands_with_a_fast_route_off_a_terminal_load_neither_typer_nor_rich(sim):
    """No Typer for any of them; no rich either where the output is plain text or JSON (the health
    and models tables for people still use rich)."""
    Fleet().add(sim.add().url, id="one")
    Fleet().check()
    for args in (["list"], ["list", "--json"], ["paths"], ["health", "--json"], ["health"], ["refresh"],
                 ["models", "--json"], ["models", "--diff", "--json"], ["run", "llama3.2", "hi"],
                 ["embed", "nomic-embed-text", "hi"]):
        result, imported = _imports_of_a_real_start(*args)
        assert result.stdout, args
        heavy = {"typer", "click"} | (set() if args == ["health"] else {"rich"})
        assert not heavy & imported, (args, sorted(heavy & imported))
    result, imported = _imports_of_a_real_start("list", "--help")  # the probe sees Typer when it loads
    assert "typer" in imported


def test_list_off_a_terminal_prints_what_typer_prints():
    Fleet().add("http://gpu1:11434", name="北京 GPU", priority="backup", max_inflight=3)
    Fleet().add("http://gpu2:11434", name="[bold]x[/bold]", api_key_env="GPU2_KEY")
    for args in (["list"], ["list", "--json"]):
        fast = subprocess.run([sys.executable, "-m", "ollamactl", *args], capture_output=True, text=True,
                              env=os.environ.copy(), timeout=60)
        assert fast.returncode == 0
        assert fast.stdout == make_runner().invoke(app, args).stdout, args


def test_the_plain_table_is_the_rich_table_less_the_styles(capsys):
    """Scripts see a table (off a terminal: plain text, no rich) in the layout rich gives it on a
    terminal as wide, less the trailing spaces; and rows are never cut to a width there."""
    import io

    from rich.console import Console

    from ollamactl.cli import output

    columns = ("ID", "NAME", "URL")
    rows = [("a", "北京 GPU", "http://a:1"), ("bb", "[bold]x[/bold] \x1b[31m", "-"), ("c", "e\u0301t\u00e9", 7),
            ("d", None, "-")]
    output.table(columns, rows)
    plain = capsys.readouterr().out
    console = Console(file=io.StringIO(), width=output.WIDE, color_system=None)
    console.print(output.renderable(output.Grid(columns, rows), output.WIDE))
    assert plain == "".join(line.rstrip() + "\n" for line in console.file.getvalue().splitlines())
    assert "[bold]x[/bold] \\x1b[31m" in plain
    output.table(columns, [("x" * 3, "n" * 200, "u" * 200)], cut={"NAME": 16, "URL": 20})
    assert len(capsys.readouterr().out.splitlines()[1]) == 3 + 2 + 200 + 2 + 200


def test_exit_codes_and_output_are_the_typer_commands_whichever_route(sim):
    """`refresh` with one instance up and one down: 4 and the same summary, by the launcher's fast
    route (a real process) and by the Typer command."""
    Fleet().add(sim.add().url, id="up")
    Fleet().add(sim.add(fault="http500").url, id="down")
    fast = subprocess.run([sys.executable, "-m", "ollamactl", "refresh"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=60)
    typer = make_runner().invoke(app, ["refresh"])
    assert (fast.returncode, fast.stdout) == (typer.exit_code, typer.stdout) == (4, typer.stdout)
    assert fast.stdout == "2 instances: 1 healthy, 1 unhealthy\n"


def test_the_generator_refuses_a_parameter_the_spec_parser_could_not_honour():
    """A range-checked number, a callback or an environment variable would be skipped silently by
    the spec parser, and a lone spelling of a true-by-default flag means True or False depending on
    the Click version: the generator stops instead (the command must leave BODIES or be simplified)."""
    import importlib.util
    from pathlib import Path

    import typer
    from typer.main import get_command

    path = Path(__file__).resolve().parent.parent / "scripts" / "gen_completions.py"
    spec = importlib.util.spec_from_file_location("gen_completions", path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)

    def command_of(function):  # type: ignore[no-untyped-def]
        sub = typer.Typer(add_completion=False)  # as every command module (a completion option would stop it)
        sub.command()(function)
        return get_command(sub)

    def ranged(count: int = typer.Option(1, "--count", min=0)) -> None: ...
    def from_env(name: str = typer.Option("x", "--name", envvar="NAME")) -> None: ...
    def lone_true_flag(color: bool = typer.Option(True, "--no-color")) -> None: ...
    def plain(count: int = typer.Option(1, "--count", "-c"), flag: bool = typer.Option(False, "--flag/--no-flag"),
              words: list[str] | None = typer.Argument(None)) -> None: ...

    for function in (ranged, from_env, lone_true_flag):
        with pytest.raises(SystemExit):
            generator.command_spec(command_of(function))
    assert generator.command_spec(command_of(plain)) == {
        "options": {"--count": ("count", "int", False), "-c": ("count", "int", False),
                    "--flag": ("flag", True, False), "--no-flag": ("flag", False, False)},
        "arguments": [("words", "str", -1, False)], "defaults": {"count": 1, "flag": False, "words": None}}


def test_output_the_last_flush_cannot_write_fails_the_command(sim):
    """The fast route ends in os._exit (cli.exits.leave), after the interpreter would have flushed
    stdout: output still buffered then and not written (a full disk, a reader that left) must not
    end in exit 0 as if it had been. A full disk is said; a reader that left ends quietly with 1."""
    Fleet().add(sim.add().url, id="up")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as for users
    for args in (["--version"], ["refresh"]):
        with open("/dev/full", "wb") as full:
            done = subprocess.run([sys.executable, "-m", "ollamactl", *args], stdout=full, stderr=subprocess.PIPE,
                                  env=env, timeout=60)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.decode().splitlines()[-1].startswith("ollamactl: error: cannot write the output (")
        reader, writer = os.pipe()
        os.close(reader)  # the reader left before the answer
        try:
            done = subprocess.run([sys.executable, "-m", "ollamactl", *args], stdout=writer, stderr=subprocess.PIPE,
                                  env=env, timeout=60)
        finally:
            os.close(writer)
        assert (done.returncode, done.stderr) == (1, b""), args
    for args in (["pick"], ["list"], ["paths"]):  # unbuffered: the write inside the command fails
        with open("/dev/full", "wb") as full:
            done = subprocess.run([sys.executable, "-m", "ollamactl", *args], stdout=full, stderr=subprocess.PIPE,
                                  env={**env, "PYTHONUNBUFFERED": "1"}, timeout=60)
        assert done.returncode == 1 and b"Traceback" not in done.stderr, (args, done.stderr)
        assert done.stderr.decode().splitlines()[-1].startswith("ollamactl: error: cannot write the output (")
