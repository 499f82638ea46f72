"""Each fact the help states comes from the one place the code states it: Ollama's default port
(core/registry DEFAULT_PORT), the exit codes (core/errors ExitCode, EXIT_MEANINGS) and the defaults
of the `[settings]` (core/settings DEFAULTS). Proved by changing the source in a fresh process and
reading every help text: each must follow, none may keep the old value."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ollamactl.core.errors import EXIT_MEANINGS, ExitCode
from ollamactl.core.settings import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ollamactl"
PORT = 11434  # what a user sees today
NEW_PORT = 12345
SHIFT = 200  # every exit code moves by this much in the changed process
NEW_DEFAULTS = {key: (value * 2 + 0.5 if isinstance(value, float) else value)
                for key, value in DEFAULTS.items() if isinstance(value, float)}
NEW_DEFAULTS["strategy"] = "least-busy" if DEFAULTS["strategy"] != "least-busy" else "random"

CHANGED = """
import json, sys
port, defaults, shift = json.loads(sys.argv[1])
import ollamactl.core.registry as registry
from ollamactl.core import errors, settings
registry.DEFAULT_PORT = port
settings.DEFAULTS.update(defaults)
for name, code in list(vars(errors.ExitCode).items()):
    if isinstance(code, int) and not name.startswith("_"):
        setattr(errors.ExitCode, name, code + shift)
meanings = getattr(errors, "EXIT_MEANINGS", {})
shifted = {code + shift: words for code, words in meanings.items()}
meanings.clear()
meanings.update(shifted)

import typer
from typer.main import get_command
from ollamactl.cli.app import app
from ollamactl.core.export.common import DEFAULT_LISTEN
from ollamactl.core.registry.instances import default_instance
from ollamactl.core.registry.urls import normalise_url

group = get_command(app)
root = typer.Context(group, info_name="ollamactl")
texts = [{"where": "ollamactl", "param": None, "default": None, "text": group.help}]
for name in group.list_commands(root):
    command = group.get_command(root, name)
    texts.append({"where": name, "param": None, "default": None, "text": command.help})
    for param in command.params:
        default = param.default if isinstance(param.default, (int, float, str, type(None))) else None
        shows = param.show_default if isinstance(getattr(param, "show_default", None), str) else ""
        texts.append({"where": f"{name} {param.opts[0]}", "param": param.name, "default": default,
                      "text": " ".join(filter(None, (getattr(param, "help", None), shows)))})
print(json.dumps({"texts": texts, "url": normalise_url("gpu1"), "default_url": default_instance(None).url,
                  "listen": DEFAULT_LISTEN}))
"""


@pytest.fixture(scope="module")
def changed() -> dict:
    """Every help text (and the URLs derived from the port) of a process whose port, exit codes
    and setting defaults were changed before the CLI was imported."""
    result = subprocess.run([sys.executable, "-c", CHANGED, json.dumps([NEW_PORT, NEW_DEFAULTS, SHIFT])],
                            capture_output=True, text=True, timeout=120, env=os.environ.copy(), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_default_port_is_written_once_in_the_package():
    written = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
               for path in sorted(PACKAGE.rglob("*.py"))
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if str(PORT) in line]
    assert len(written) == 1 and re.search(rf":\d+: DEFAULT_PORT = {PORT}\b", written[0]), \
        "the port must be written once, as DEFAULT_PORT; everything else derives from it:\n" + "\n".join(written)


def test_every_place_that_states_the_port_follows_the_constant(changed):
    assert changed["url"] == f"http://gpu1:{NEW_PORT}"
    assert changed["default_url"] == f"http://127.0.0.1:{NEW_PORT}"
    assert changed["listen"] == f"127.0.0.1:{NEW_PORT}"
    stale = [f"{item['where']}: {item['text']}" for item in changed["texts"] if str(PORT) in (item["text"] or "")]
    assert not stale, "help that kept the old port:\n" + "\n".join(stale)
    said = {item["where"]: item["text"] for item in changed["texts"]}
    assert f"(default {NEW_PORT})" in said["discover --port"]
    assert said["export --listen"].endswith(f"127.0.0.1:{NEW_PORT}")


def test_a_default_the_help_states_is_the_setting_it_names(changed):
    """`(default: the wait setting, 60)` must say what DEFAULTS["wait"] is, whatever it is."""
    wrong = []
    for item in changed["texts"]:
        text = item["text"] or ""
        for said in re.findall(r"\(default[^()]*\)", text):
            keys = [key for key in DEFAULTS if re.search(rf"(?<!\w){key}(?!\w)", said)]
            if not keys and "setting" in said and item["param"] in DEFAULTS:
                keys = [item["param"]]  # `(default: settings, 3)` on --connect-timeout
            for key in keys:
                if shown(NEW_DEFAULTS.get(key, DEFAULTS[key])) not in said:
                    wrong.append(f"{item['where']}: {said} (the {key} setting is now {shown(NEW_DEFAULTS[key])})")
            if not keys and item["default"] is not None and re.search(r"\d", said):
                if shown(item["default"]) not in said:  # a number copied from the option's own default
                    wrong.append(f"{item['where']}: {said} (the option's default is {item['default']!r})")
        for key, value in DEFAULTS.items():
            if key in NEW_DEFAULTS and re.search(rf"(?<![\w.-]){re.escape(shown(value))} by default", text):
                wrong.append(f"{item['where']}: {shown(value)} by default (the {key} setting is now"
                             f" {shown(NEW_DEFAULTS[key])})")
    assert not wrong, "help that states a default other than its setting's:\n" + "\n".join(wrong)


def test_every_exit_code_the_help_states_comes_from_exit_code(changed):
    codes = {code + SHIFT for code in EXIT_MEANINGS}
    found, wrong = 0, []
    for item in changed["texts"]:
        text = item["text"] or ""
        for pattern in (r"\b[Ee]xit\s+(\d+)", r",\s+(\d+)\s+(?:when|if|on|for)\b"):
            for number in re.findall(pattern, text):
                found += 1
                if int(number) not in codes:
                    wrong.append(f"{item['where']}: {number} in {text!r}")
    assert found > 10 and not wrong, "exit codes written as digits, not from ExitCode:\n" + "\n".join(wrong)
    [root] = [item["text"] for item in changed["texts"] if item["where"] == "ollamactl"]
    assert ", ".join(f"{code + SHIFT} {words}" for code, words in EXIT_MEANINGS.items()) in root


def test_every_exit_code_has_its_words_and_the_docs_table_lists_exactly_them():
    defined = {value for name, value in vars(ExitCode).items() if isinstance(value, int) and not name.startswith("_")}
    assert set(EXIT_MEANINGS) == defined
    table = (ROOT / "docs" / "output.md").read_text(encoding="utf-8")
    assert [int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.M)] == list(EXIT_MEANINGS)
