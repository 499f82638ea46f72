"""The README's per-user completion install lines, run as written in a fresh HOME, then a new real
bash, zsh and fish completing from what they installed: choices, apostrophes, instance ids.

A shell that is not installed fails its test with the reason (scripts/install_test_deps.sh installs
them); it never skips quietly.
"""

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_shell import doc_commands

from ollamactl.core.fleet import Fleet
from ollamactl.core.routing.selection import STRATEGIES
from ollamactl.sim import FAULTS

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def require(program):
    if shutil.which(program) is None:
        pytest.fail(f"{program} is not installed: run `bash scripts/install_test_deps.sh` (as root) first")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh HOME where the README's completion lines have run, and a PATH whose `ollamactl` and
    `python` are this interpreter on this working tree."""
    require("bash")
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("ollamactl", f'exec "{sys.executable}" -m ollamactl "$@"'),
                       ("python", f'exec "{sys.executable}" "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    for variable in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "ZDOTDIR", "BASH_COMPLETION_USER_DIR"):
        monkeypatch.delenv(variable, raising=False)
    lines = doc_commands("README.md", {"Shell completion"})
    assert len(lines) >= 3, "the README's Shell completion section lost its install lines"
    for command in lines:
        result = subprocess.run(["bash", "-c", command.text], capture_output=True, text=True, cwd=home, timeout=60)
        assert result.returncode == 0, f"README line failed: {command.text}\n{result.stderr}"
    Fleet().add("gpu1", name="box one")
    return home


def fleet_cache():
    def change(data):
        data["health"]["gpu1-11434"] = {"url": "http://gpu1:11434", "healthy": True, "models": [
            {"name": "llama3.2:latest"}], "checked_at": time.time()}

    Fleet().store.update(change)


def bash_complete(home, line):
    """COMPREPLY in a new bash that loads completions as Debian's ~/.bashrc does (bash-completion)."""
    if not BASH_COMPLETION.exists():
        pytest.fail("bash-completion is not installed: run `bash scripts/install_test_deps.sh` (as root) first")
    words = line.split(" ")
    quoted = " ".join(shlex.quote(word) for word in words)
    program = (f"source {BASH_COMPLETION}\n"
               "__load_completion ollamactl || exit 9\n"  # what the first TAB does
               f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMP_LINE={shlex.quote(line)};"
               f" COMP_POINT={len(line)}\n"
               "_ollamactl_completion ollamactl\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                            cwd=home, timeout=60)
    assert result.returncode == 0, f"bash did not load the installed completion: {result.stderr}"
    return [item for item in result.stdout.splitlines() if item]


def zsh_complete(home, line):
    """What the installed zsh completion offers: a new interactive zsh reads ~/.zshrc (fpath, compinit),
    and the completion widget's _arguments is replaced by one printing what it was given."""
    require("zsh")
    words = line.split(" ")
    program = ('_arguments() { print -r -- "$@"; }\n'
               f"words=({' '.join(words)} ''); CURRENT={len(words) + (1 if line.endswith(' ') else 0)}\n"
               "$_comps[ollamactl]\n")
    if not line.endswith(" "):
        program = program.replace(" '')", ")")
    result = subprocess.run(["zsh", "-i", "-c", program], capture_output=True, text=True, cwd=home, timeout=60)
    return result.stdout + result.stderr


def fish_complete(home, line):
    require("fish")
    result = subprocess.run(["fish", "-c", f"complete -C '{line}'"], capture_output=True, text=True,
                            cwd=home, timeout=60, env={**os.environ, "XDG_CONFIG_HOME": str(home / ".config")})
    assert result.returncode == 0, result.stderr
    return sorted(item.split("\t")[0] for item in result.stdout.splitlines())  # fish sorts them its way


CHOICES = [
    ("ollamactl pick --format ", ["url", "env", "openai", "json"]),
    ("ollamactl pick -s ", list(STRATEGIES)),
    ("ollamactl pick -t ", ["chat", "embedding"]),
    ("ollamactl add gpu2 --type ", ["chat", "embedding", "both"]),
    ("ollamactl update gpu1-11434 -t ", ["chat", "embedding", "both"]),
    ("ollamactl run llama3.2 --strategy ", list(STRATEGIES)),
    ("ollamactl export --format ", ["litellm", "nginx", "haproxy", "json"]),
    ("ollamactl completion ", ["bash", "zsh", "fish"]),
    ("ollamactl simulate --fault 2=b", ["2=busy503"]),
    ("ollamactl simulate --fault ", [f"1={fault}" for fault in FAULTS]),  # were file names
    ("ollamactl simulate --fault 3", [f"3={fault}" for fault in FAULTS]),
    ("ollamactl add gpu2 --priority ", ["0", "backup"]),  # were file names
    ("ollamactl update gpu1-11434 -p b", ["backup"]),
]


@pytest.mark.parametrize("line,expected", CHOICES)
def test_bash_from_the_readme_install_completes_choices(home, line, expected):
    assert bash_complete(home, line) == expected


def test_bash_from_the_readme_install_completes_ids_and_models(home):
    fleet_cache()
    assert bash_complete(home, "ollamactl update gp") == ["gpu1-11434"]
    assert bash_complete(home, "ollamactl pick -m ll") == ["llama3.2:latest"]


def test_bash_quotes_a_name_with_spaces_as_the_shell_must_read_it(home):
    """`ollamactl update bo<TAB>` inserted `box one` unquoted: two words, and the update failed."""
    assert bash_complete(home, "ollamactl update bo") == ["box\\ one"]
    assert bash_complete(home, "ollamactl update 'bo") == ["box one"]  # inside the user's quote: as is


def test_zsh_from_the_readme_install_completes_choices_and_keeps_apostrophes(home):
    offered = zsh_complete(home, "ollamactl pick --format ")
    for choice in ("url", "env", "openai", "json"):
        assert f'"{choice}"' in offered, offered
    assert "Change an instance's settings" in zsh_complete(home, "ollamactl upd"), "the apostrophe was lost"
    assert '"gpu1-11434"' in zsh_complete(home, "ollamactl update gp")


def test_fish_from_the_readme_install_completes_choices(home):
    assert fish_complete(home, "ollamactl pick --format ") == ["env", "json", "openai", "url"]
    assert fish_complete(home, "ollamactl add gpu2 --type ") == ["both", "chat", "embedding"]
    assert fish_complete(home, "ollamactl update gp") == ["gpu1-11434"]
