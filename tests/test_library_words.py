"""The core speaks in library terms: an error, hint or warning names a parameter as `Fleet` takes it
(`listen`, `include_disabled=True`), and the command line shows its flag instead (`--listen`,
`--all`), from one table (cli/flags.py). No flag is spelled in the core, but in the text it writes
for other tools (an exported config's header)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from cli_helpers import one_error_line, run

from ollamactl import Fleet, NoInstanceError, OllamactlError, Said, UsageError

CORE = Path(__file__).resolve().parent.parent / "ollamactl" / "core"
FLAG = re.compile(r"(?<![\w-])--[a-z]")
# Text the core writes for other tools or files, where the command line is what is meant.
WRITTEN_FOR_OTHERS = {
    ("export/common.py", "--format"), ("export/common.py", "--model"), ("export/common.py", "--type"),
    ("export/common.py", "--all"), ("export/common.py", "--listen"),
    ("export/common.py", "--secrets-file"),  # the command that wrote an exported config, in its header
    ("export/build.py", " litellm --config "), ("export/build.py", " --host "), ("export/build.py", " --port "),
    # LiteLLM's own command line, in the header of the config written for it
    ("export/build.py", "`bench --set-weights`"),  # names the command that writes the weights the export reads
    ("registry/instances.py", "`ollamactl --help`"),  # the header of a new registry file
}


def flag_literals() -> set[tuple[str, str]]:
    """(module, string literal) for every literal of core/ that spells a flag, docstrings aside."""
    found = set()
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and FLAG.search(node.value):
                found.add((path.relative_to(CORE).as_posix(), node.value))
    return found


def allowed(module: str, text: str) -> set[tuple[str, str]]:
    """The entries of WRITTEN_FOR_OTHERS that let `text` of `module` spell a flag."""
    return {(where, what) for where, what in WRITTEN_FOR_OTHERS
            if module == where and (text.strip() == what.strip() or what in text)}


def test_no_flag_is_spelled_in_the_core_but_in_text_written_for_other_tools():
    literals = flag_literals()
    assert sorted((module, text) for module, text in literals if not allowed(module, text)) == []
    used = set().union(*(allowed(module, text) for module, text in literals))
    assert used == WRITTEN_FOR_OTHERS, f"no longer in the core: {sorted(WRITTEN_FOR_OTHERS - used)}"


def test_a_value_in_said_words_is_never_read_as_a_template():
    said = Said("{listen} must be ADDR:PORT ({given!r})", given="{listen}")
    assert said == "listen must be ADDR:PORT ('{listen}')"
    assert said.named({"listen": "--listen"}) == "--listen must be ADDR:PORT ('{listen}')"
    passed = Said("pass {include_disabled=True}, or {fmt=nginx}")
    assert passed == "pass include_disabled=True, or fmt=nginx"
    assert passed.named({"include_disabled": "--all", "fmt": "--format"}) == "pass --all, or --format nginx"


@pytest.fixture
def fleet(sim):
    fleet = Fleet()
    fleet.add(sim.add().url, id="gpu1")
    return fleet


def test_a_refused_listen_address_says_listen_to_the_library_and_the_flag_on_the_command_line(fleet):
    with pytest.raises(UsageError) as refused:
        fleet.export("nginx", listen="bad")
    assert str(refused.value).startswith("listen must be ADDR:PORT with an IP address ('bad')")
    result = run("export", "--format", "nginx", "--listen", "bad")
    assert result.exit_code == 2
    assert one_error_line(result).startswith("ollamactl: error: --listen must be ADDR:PORT with an IP address ('bad')")


def test_a_hint_names_the_parameter_to_pass_or_the_flag(fleet):
    fleet.disable("gpu1")
    with pytest.raises(NoInstanceError) as refused:
        fleet.check()
    assert refused.value.hint == "pass include_disabled=True to include them anyway, or `ollamactl enable ID_OR_NAME`"
    result = run("health")
    assert result.exit_code == 3
    assert one_error_line(result).endswith("; pass --all to include them anyway, or `ollamactl enable ID_OR_NAME`")


@pytest.mark.parametrize("argv", [["refresh"], ["models"], ["ps"], ["metrics"], ["sync", "--dry-run"], ["load", "x"],
                                  ["pull", "x", "--all"], ["rm", "x", "--all", "-y"]])
def test_every_instance_disabled_offers_no_flag_the_command_lacks(fleet, argv):
    """Only `health` can include disabled instances (its --all). Before, every command said `pass --all
    to include them anyway`: refresh, models, ps ... have no --all, and pull's and rm's --all (every
    enabled instance) had been passed; Fleet.refresh() and the like offered an include_disabled they
    do not take."""
    fleet.disable("gpu1")
    result = run(*argv)
    assert result.exit_code == 3
    assert one_error_line(result) == ("ollamactl: error: all 1 registered instances are disabled;"
                                      " enable one with `ollamactl enable ID_OR_NAME`")
    for method in (fleet.refresh, fleet.health, fleet.models, fleet.survey, fleet.running, fleet.bench):
        with pytest.raises(NoInstanceError) as refused:
            method()
        assert "include_disabled" not in str(refused.value), method


@pytest.mark.parametrize("field, value, flag, words", [
    ("weight", 0, "--weight", "must be a whole number from 1 to 1000, got 0"),
    ("type", "gpu", "--type", "must be one of chat, embedding, both, got 'gpu'"),
    ("priority", 5000, "--priority", "5000 is not a whole number from -1000 to 1000 or 'backup'"),
    ("max_inflight", 200000, "--max-inflight", "200000 is not a whole number from 1 to 100000"),
])
def test_an_instance_field_is_named_as_the_caller_gives_it(fleet, tmp_path, field, value, flag, words):
    """Fleet.add/update name the parameter, the command line its flag, the registry file its key.
    Before, `add --max-inflight 200000` said `max_inflight 200000 is not ...` and `--weight 0` said
    `weight must be ...`: the library's names on the command line."""
    for call in (lambda: fleet.add("http://127.0.0.1:9", **{field: value}),
                 lambda: fleet.update("gpu1", **{field: value})):
        with pytest.raises(UsageError) as refused:
            call()
        assert str(refused.value).startswith(f"{field} {words}")
    for command in (["add", "127.0.0.1:9", "--no-check"], ["update", "gpu1"]):
        result = run(*command, flag, str(value))
        assert result.exit_code == 2
        assert one_error_line(result).startswith(f"ollamactl: error: {flag} {words}"), result.stderr
    edited = tmp_path / "edited.toml"
    edited.write_text(f'[[instances]]\nid = "a"\nurl = "http://a:1"\n{field} = {value!r}\n'.replace("'", '"'))
    with pytest.raises(OllamactlError) as unreadable:
        Fleet(edited, tmp_path).instances()
    assert f"{field} {words}" in str(unreadable.value)


def test_a_warning_names_the_parameter_to_the_library_and_the_flag_on_the_command_line(fleet, sim):
    fleet.add(sim.add().url, id="gpu2")
    fleet.check()
    fleet.update("gpu1", api_key="sk-one")
    exported = fleet.export("nginx")
    [left_out] = [w for w in exported.warnings if "left out" in w]
    assert "pass secrets_file=PATH to give nginx its key" in left_out and "--" not in left_out
    result = run("export", "--format", "nginx")
    assert "warning: gpu1 is left out: nginx cannot read the environment" in result.stderr
    assert "pass --secrets-file PATH to give nginx its key" in result.stderr


@pytest.mark.parametrize("argv, named", [
    (["pick", "-m", " "], "--model is blank"),  # the fast route's command: its own option
    (["export", "-f", "litellm", "-m", " "], "--model is blank"),  # a Typer command's own option
    (["bench", "-m", " "], "--model is blank"),  # refused before anything is measured (was: `:latest`)
    (["run", " ", "hi"], "MODEL is blank"),  # an argument where the command takes one
    (["embed", "", "x"], "MODEL is blank"),
])
def test_a_parameter_is_named_as_the_running_command_spells_it(argv, named):
    """One rule for a blank model, shown under the running command's own name for it (before: pick
    and run said `the model name is empty`, export `MODEL is blank` for its -m, and bench -m ' '
    measured a model called `:latest`)."""
    Fleet().add("http://127.0.0.1:9", check=False)
    result = run(*argv)
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"ollamactl: error: {named}, got "), result.stderr


def test_bench_refuses_an_empty_prompt_instead_of_sending_its_own():
    """Before: `bench --prompt ''` measured with the standard prompt, saying nothing."""
    Fleet().add("http://127.0.0.1:9", check=False)
    result = run("bench", "--prompt", " ")
    assert result.exit_code == 2
    assert one_error_line(result) == "ollamactl: error: --prompt is empty; leave it out for the standard prompt"
    with pytest.raises(UsageError, match="^prompt is empty"):
        Fleet().bench(prompt="")
