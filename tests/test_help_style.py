"""Help that reads as one piece: usage lines in one metavar style, `...` for several values, no range
noise, examples that run, and a top-level help ending with three examples."""

import re
import shlex

import pytest
import typer
from cli_helpers import RUNNER, run
from typer.main import get_command

from ollamactl.cli.app import app


def commands():
    group = get_command(app)
    root = typer.Context(group, info_name="ollamactl")
    return root, [(name, group.get_command(root, name)) for name in group.list_commands(root)]


def usage(name):
    result = RUNNER.invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0
    return next(line.strip() for line in result.stdout.splitlines() if "Usage:" in line)


def test_usage_lines_use_one_metavar_style_and_show_several():
    _, found = commands()
    for name, command in found:
        line = usage(name)
        assert not re.search(r"[{}<>]", line), line
        words = line.split("Usage: ", 1)[1].split()
        assert all(word == word.upper() for word in words[2:]), line  # MODEL [PROMPT]..., never {model}
        for param in command.params:
            if param.param_type_name == "argument" and param.nargs != 1:
                shown = param.metavar.removesuffix("...")  # exec's is COMMAND [ARGS]... already
                assert re.search(re.escape(shown) + r"\]?\.\.\.", line), line
    assert usage("run").endswith("ollamactl run [OPTIONS] MODEL [PROMPT]...")
    assert usage("remove").endswith("ollamactl remove [OPTIONS] ID_OR_NAME...")
    assert usage("health").endswith("ollamactl health [OPTIONS] [ID_OR_NAME]...")


def test_options_show_a_metavar_never_a_type_or_a_range():
    _, found = commands()
    for name, _command in found:
        shown = RUNNER.invoke(app, [name, "--help"], terminal_width=200).stdout
        options = shown.split("Options", 1)[1]
        assert not re.search(r"<(int|float|str|text|int range|float range)>|\[x[<>]=", options), f"{name}:\n{shown}"


def test_a_value_below_a_minimum_is_still_refused():
    result = run("run", "llama3.2", "hi", "--tries", "0")
    assert result.exit_code == 2 and "--tries" in result.stderr
    assert run("embed", "m", "x", "--batch-size", "0").exit_code == 2


def test_every_example_in_the_help_parses():
    root, found = commands()
    for name, command in found:
        for example in re.findall(r"Example: (.+)", command.help or ""):
            for invocation in re.findall(r"ollamactl ([^|;&)>]+)", example):
                words = shlex.split(invocation.replace('"$(', ""))
                if words[0] != name:
                    command_here = dict(found)[words[0]]
                else:
                    command_here = command
                try:
                    command_here.make_context(words[0], words[1:], parent=root)
                except Exception as error:  # noqa: BLE001 - any parse error is the failure
                    pytest.fail(f"{name}'s example `ollamactl {invocation}` does not parse: {error}")


def test_the_top_level_help_ends_with_three_examples():
    shown = RUNNER.invoke(app, ["--help"], terminal_width=200).stdout
    before_panels = shown.split("╭", 1)[0].rstrip().splitlines()
    examples = [line.strip() for line in before_panels[-3:]]
    assert before_panels[-4].strip() == "Examples:"
    assert all(line.startswith("ollamactl ") for line in examples)
    for line in examples:
        assert run(*shlex.split(line.split("  #", 1)[0])[1:], "--help").exit_code == 0


def test_the_rich_help_keeps_every_bracketed_text_of_the_plain_one():
    """`export --help` showed "Where the gateway listens ." (rich read `[default: ...]` as markup)."""
    root, found = commands()
    for name, command in found:
        mode, command.rich_markup_mode = command.rich_markup_mode, None  # Click's plain layout (docs/cli.md)
        plain = command.get_help(typer.Context(command, info_name=name, parent=root, terminal_width=400))
        command.rich_markup_mode = mode
        shown = " ".join(RUNNER.invoke(app, [name, "--help"], env={"COLUMNS": "400"}).stdout.split())
        for bracketed in re.findall(r"\[[^\]]*\]", " ".join(plain.split())):
            assert bracketed in shown, (name, bracketed)


def test_update_states_no_default_for_what_it_leaves_as_it_is():
    """`update` changes only what it is given: `update --help` said `--priority ... (default 0)`,
    which an update without --priority does not do (the tier stays). `add` shows its default once."""
    root, found = commands()
    options = {name: {param.name: param for param in command.params} for name, command in found}
    assert [name for name, param in options["update"].items() if "default" in (param.help or "")] == []
    priority = options["add"]["priority"]
    assert "default" not in priority.help and priority.default == "0" and priority.show_default
