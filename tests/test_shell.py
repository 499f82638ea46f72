"""Shell completion (generated scripts, real bash completion), docs/cli.md, help texts, and the wheel's data files."""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import typer
from cli_helpers import REPORT_MODULES, make_runner
from typer.main import get_command

from ollamactl.cli.app import app
from ollamactl.cli.integrations.completion_cmd import BASH_QUOTING, SHELLS, completion_script
from ollamactl.core.fleet import Fleet

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "gen_completions.py"
REGENERATE = "run python scripts/gen_completions.py"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_completions", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands():
    group = get_command(app)
    ctx = typer.Context(group, info_name="ollamactl")
    return group, ctx, [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]


# ---------------------------------------------------------------------------------------------
# Generated files


def test_committed_generated_files_match_a_fresh_generation():
    stale = []
    for relative, content in _generator().generate().items():
        path = ROOT / relative
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(relative)
    assert not stale, f"stale generated files {stale}: {REGENERATE}"


def test_generator_check_mode_reports_stale_files(tmp_path, monkeypatch):
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"{result.stderr}\n{REGENERATE}"
    generator = _generator()
    monkeypatch.setattr(generator, "ROOT", tmp_path)  # an empty tree: everything is stale
    assert generator.main(["--check"]) == 1
    assert not any(tmp_path.iterdir())  # --check writes nothing
    assert generator.main([]) == 0 and generator.main(["--check"]) == 0
    assert (tmp_path / "completions" / "_ollamactl").read_text() == (tmp_path / "completions" / "ollamactl.zsh"
                                                                      ).read_text()


@pytest.mark.parametrize("shell", SHELLS)
def test_scripts_are_what_the_env_var_route_prints(shell):
    env = {**os.environ, "_OLLAMACTL_COMPLETE": f"source_{shell}"}
    routed = subprocess.run([sys.executable, "-m", "ollamactl"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert routed.returncode == 0, routed.stderr
    script = completion_script(shell)
    if shell != "fish":  # Typer's bash and zsh templates start with a blank line; ours do not
        assert routed.stdout.startswith("\n") and not script.startswith("\n")
    if shell == "zsh":  # ours turns on rc_quotes (apostrophes) and adds the autoload case after Typer's script
        typer_lines = routed.stdout.strip("\n").splitlines()
        assert [line for line in script.splitlines() if "rc_quotes" not in line][:len(typer_lines)] == typer_lines
        assert script.splitlines()[0] == "#compdef ollamactl"
    else:  # bash: ours quotes what it offers (BASH_QUOTING) after Typer's COMPREPLY line
        assert script.replace(BASH_QUOTING, "") == routed.stdout.strip("\n") + "\n"


def test_completion_command_prints_the_script_and_rejects_other_shells():
    result = make_runner().invoke(app, ["completion", "bash"])
    assert result.exit_code == 0 and result.stdout == completion_script("bash")
    assert "complete -o default -F _ollamactl_completion ollamactl" in result.stdout
    result = make_runner().invoke(app, ["completion", "tcsh"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "unsupported shell 'tcsh'; choose one of: bash, zsh, fish" in result.stderr


def test_only_the_completion_command_installs_completion():
    """Before, 11 commands (pick, run, top, export ...) offered Typer's own --install-completion and
    --show-completion, in their help and to `run m --ins<TAB>`: Typer's stock bash script, without
    the quoting `ollamactl completion bash` adds (BASH_QUOTING)."""
    _, ctx, commands = _commands()
    offered = {name: [o for p in command.params for o in p.opts if "completion" in o] for name, command in commands}
    assert {name: options for name, options in offered.items() if options} == {}
    result = make_runner().invoke(app, ["top", "--install-completion"])
    assert result.exit_code == 2 and "no such option: --install-completion" in result.stderr


# ---------------------------------------------------------------------------------------------
# Real completion


@pytest.fixture
def shell_bin(tmp_path):
    """A directory with an `ollamactl` that runs this interpreter on the working tree, for PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "ollamactl"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ollamactl "$@"\n')
    launcher.chmod(0o755)
    return bin_dir


def bash_complete(shell_bin, *words):
    """COMPREPLY of the generated bash script for `words` (the last one is being completed)."""
    if shutil.which("bash") is None:
        pytest.fail("bash is not installed: run `bash scripts/install_test_deps.sh` (as root) first")
    script = ROOT / "completions" / "ollamactl.bash"
    quoted = " ".join("'" + word.replace("'", "'\\''") + "'" for word in words)
    program = (f"source '{script}'\n"
               f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
               '_ollamactl_completion ollamactl\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{shell_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completes_instance_ids(shell_bin):
    Fleet().add("gpu1")
    Fleet().add("gpu2")
    Fleet().add("cpu1", name="spare box")
    assert bash_complete(shell_bin, "ollamactl", "update", "gp") == ["gpu1-11434", "gpu2-11434"]
    assert bash_complete(shell_bin, "ollamactl", "update", "spa") == ["spare\\ box"]  # one word to the shell


def test_bash_completes_model_names_for_pick_from_the_health_cache(shell_bin):
    def change(data):
        data["health"]["gpu1-11434"] = {
            "url": "http://gpu1:11434", "healthy": True, "error": None, "latency_ms": 1.0, "version": "0.12.6",
            "models": [{"name": n, "digest": "d", "size": 1} for n in ("llama3.2:latest", "qwen2.5:7b")],
            "loaded": [], "checked_at": time.time()}

    Fleet().store.update(change)
    assert bash_complete(shell_bin, "ollamactl", "pick", "-m", "lla") == ["llama3.2:latest"]
    assert bash_complete(shell_bin, "ollamactl", "export", "--model", "q") == ["qwen2.5:7b"]
    for command in ("pull", "rm", "load", "unload", "sync"):  # the model commands' MODEL argument
        assert bash_complete(shell_bin, "ollamactl", command, "q") == ["qwen2.5:7b"], command


def test_bash_completes_commands_and_choices(shell_bin):
    assert bash_complete(shell_bin, "ollamactl", "comp") == ["completion"]
    assert bash_complete(shell_bin, "ollamactl", "completion", "") == ["bash", "zsh", "fish"]
    assert bash_complete(shell_bin, "ollamactl", "export", "--format", "") == ["litellm", "nginx", "haproxy", "json"]


def test_zsh_script_completes_on_the_first_tab_when_autoloaded(shell_bin, tmp_path):
    if shutil.which("zsh") is None:
        pytest.fail("zsh is not installed: run `bash scripts/install_test_deps.sh` (as root) first")
    Fleet().add("gpu1")
    functions = tmp_path / "site-functions"
    functions.mkdir()
    shutil.copy(ROOT / "completions" / "_ollamactl", functions / "_ollamactl")
    program = (f"fpath=({functions} $fpath); autoload -U compinit; compinit -D -u\n"
               '_arguments() { print -r -- "$@"; }\n'  # stands in for the completion widget
               "words=(ollamactl update gp); CURRENT=3\n"
               "$_comps[ollamactl]; $_comps[ollamactl]\n")
    env = {**os.environ, "PATH": f"{shell_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.count('"gpu1-11434"') == 2, result.stdout + result.stderr


def _complete(args, incomplete):
    from ollamactl.cli.integrations.completion_cmd import _shell_completion

    completer = _shell_completion().get_completion_class("bash")(get_command(app), {}, "ollamactl",
                                                                  "_OLLAMACTL_COMPLETE")
    return [item.value for item in completer.get_completions(args, incomplete)]


def _takes_instances(param) -> bool:
    return "ID_OR_NAME" in (param.metavar or "") or param.name in ("ref", "refs", "instance", "instances")


def test_every_instance_and_model_parameter_completes():
    """Each ID_OR_NAME argument or option completes ids and names, each --model completes models."""
    Fleet().add("gpu1", name="box one")

    def change(data):
        data["health"]["gpu1-11434"] = {"url": "http://gpu1:11434", "healthy": True, "models": [
            {"name": "llama3.2:latest"}], "checked_at": time.time()}

    Fleet().store.update(change)
    _, _, commands = _commands()
    checked = []
    for name, command in commands:
        positional = 0
        for param in command.params:
            is_argument = param.param_type_name == "argument"
            before = [name, *["x"] * positional] if is_argument else [name, param.opts[0]]
            if _takes_instances(param):
                assert _complete(before, "gp") == ["gpu1-11434"], f"{name} {param.name}: ids do not complete"
                assert _complete(before, "bo") == ["box one"], f"{name} {param.name}: names do not complete"
                checked.append(f"{name} {param.name}")
            elif param.name == "model" or "--model" in param.opts:
                assert _complete(before, "lla") == ["llama3.2:latest"], f"{name} {param.name}: models do not complete"
                checked.append(f"{name} {param.name}")
            if is_argument:
                positional += 1
    assert {"update ref", "enable refs", "health refs", "pick model", "export model"} <= set(checked), checked


NO_NETWORK = """
import socket, os
_connect = socket.socket.connect


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        with open(os.environ["NETWORK_LOG"], "a") as log:
            log.write(repr(address) + "\\n")
        raise OSError("network use during completion")
    return _connect(self, address)


socket.socket.connect = connect
"""


def test_completion_never_touches_the_network(shell_bin, tmp_path, monkeypatch):
    Fleet().add("http://127.0.0.1:9", id="nothing-listens")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    log = tmp_path / "network.log"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("NETWORK_LOG", str(log))
    assert bash_complete(shell_bin, "ollamactl", "health", "noth") == ["nothing-listens"]
    assert bash_complete(shell_bin, "ollamactl", "pick", "-m", "") == []
    assert not log.exists(), f"completion opened connections: {log.read_text()}"


# ---------------------------------------------------------------------------------------------
# Help texts


def test_every_command_has_a_one_line_summary_and_an_example():
    _, ctx, commands = _commands()
    problems = []
    for name, command in commands:
        text = (command.help or "").strip()
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        if not paragraphs or "\n" in paragraphs[0] or len(paragraphs[0]) > 100:
            problems.append(f"{name}: the first paragraph of its docstring must be a one-line summary")
        examples = [p for p in paragraphs if p.startswith("Example:")]
        if not examples or "ollamactl" not in examples[0]:
            problems.append(f"{name}: no 'Example: ... ollamactl ...' paragraph")
        shown = make_runner().invoke(app, [name, "--help"])
        if shown.exit_code != 0 or "Example:" not in shown.stdout:
            problems.append(f"{name}: --help does not show the example")
    assert not problems, "\n".join(problems)


def test_docs_cover_every_command():
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    _, _, commands = _commands()
    for name, _command in commands:
        assert f"## ollamactl {name}\n" in docs, f"docs/cli.md lacks {name}: {REGENERATE}"
        assert f"Usage: ollamactl {name}" in docs


# ---------------------------------------------------------------------------------------------
# Packaging


def _wheel_command(out: Path) -> list[str]:
    """pip wheel without build isolation when this environment can build one, else with it."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    try:
        import setuptools

        major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
        bdist_builtin = (major, minor) >= (70, 1)
        has_wheel = importlib.util.find_spec("wheel") is not None
        if major >= 68 and (bdist_builtin or has_wheel):
            command.append("--no-build-isolation")
    except ImportError:
        pass
    return command


def test_the_wheel_installs_the_completion_scripts(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    for name in ("ollamactl", "completions"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    result = subprocess.run([*_wheel_command(out), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("ollamactl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = next(n.split("/data/")[0] for n in names if ".data/data/" in n) + "/data/"
    expected = {
        "share/bash-completion/completions/ollamactl": "completions/ollamactl",
        "share/zsh/site-functions/_ollamactl": "completions/_ollamactl",
        "share/fish/vendor_completions.d/ollamactl.fish": "completions/ollamactl.fish",
    }
    for installed, committed in expected.items():
        assert data + installed in names, f"{installed} missing from {wheel.name}"
        assert zipfile.ZipFile(wheel).read(data + installed).decode() == (ROOT / committed).read_text()
    assert {"ollamactl/cli/integrations/export_cmd.py", "ollamactl/core/export/build.py",
            "ollamactl/sim/server.py"} <= set(names)


def _imported(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "ollamactl", *args], capture_output=True,
                            text=True, timeout=60)
    return result, {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                    if line.startswith("import time:")}


def test_commands_load_lazily_from_a_table_that_matches_their_modules():
    import importlib

    from ollamactl.cli.commands import COMMANDS

    for module in set(COMMANDS.values()):
        defined = get_command(importlib.import_module(f"ollamactl.cli.{module}").app)
        names = set(getattr(defined, "commands", None) or {defined.name})
        assert names == {name for name, owner in COMMANDS.items() if owner == module}, module
    script = REPORT_MODULES + "from ollamactl.cli.launcher import main; main(['list', '--help'])"  # Typer's route
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    imported = set(result.stderr.split())  # importlib.import_module escapes -X importtime: ask sys.modules
    command_modules = {f"ollamactl.cli.{module}" for module in COMMANDS.values()}
    assert imported & command_modules == {"ollamactl.cli.registry.registry_cmds"}


def test_version_and_paths_answer_without_typer_and_as_the_typer_commands_do():
    for args in (["--version"], ["-V"], ["paths"], ["paths", "--json"]):
        result, imported = _imported(*args)
        assert result.returncode == 0 and not {"typer", "click", "rich"} & {m.split(".")[0] for m in imported}
        assert result.stdout == make_runner().invoke(app, args).stdout, args
