"""Hostile names and hostile servers through every command that prints (issue 11, point 1).

Names with rich markup or control characters (typed, or written into the TOML by hand), and servers
whose version, model names and error bodies carry escape sequences and markup: every command shows
them as visible text, never as terminal control or markup, and never crashes. JSON keeps them exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cli_helpers import ok, run, written_to_a_terminal
from hostile_server import BEL, ESC, NASTY, answer, ollama_like, tags

from ollamactl.cli import output
from ollamactl.cli.completers import complete_model
from ollamactl.core.fleet import Fleet

NAME = f"evil{ESC}]0;OWNED{BEL} [red]x[/red] [/b]"  # a name written into the TOML by hand


def assert_safe(result, *visible: str) -> None:
    """No raw ESC or BEL reached the terminal, and each of `visible` is shown as it is (no markup effect)."""
    shown = result.stdout + result.stderr
    assert ESC not in shown and BEL not in shown, shown
    assert "Traceback" not in shown
    for text in visible:
        assert text in shown, (text, shown)


def test_markup_in_names_is_shown_not_interpreted():
    for url, name in (("127.0.0.1:1", "a[/b]"), ("127.0.0.1:2", "gpu box [backup]"),
                      ("127.0.0.1:3", "[link=http://evil.example]click[/link]")):
        ok("add", url, "--name", name)
    result = ok("list")
    assert "a[/b]" in result.stdout and "gpu box [backup]" in result.stdout
    assert "[link=http://evil.example]click[/link]" in result.stdout
    assert "\x1b]8;" not in result.stdout  # no hidden terminal hyperlink


@pytest.fixture
def hostile_fleet(hostile, isolated_env):
    """Three hostile servers registered under a hand-written hostile name:
    `shiny` is healthy but its version and model names are nasty, `broken` answers 500 with a nasty
    error, `liar` looks healthy but fails every generate and embed with a nasty error."""
    shiny = hostile({**ollama_like(version=NASTY, names=("[/bad]:latest", f"evil{ESC}[31m:latest",
                                                               "llama3.2:latest")),
                     "/api/ps": tags(["[/bad]:latest"])})
    broken = hostile({"/api/version": answer({"error": NASTY}, 500)})
    liar = hostile({**ollama_like(names=("llama3.2:latest", "nomic-embed-text:latest")),
                    "/api/generate": answer({"error": NASTY}, 500), "/api/embed": answer({"error": NASTY}, 500)})
    config = isolated_env["config"]
    config.parent.mkdir(parents=True, exist_ok=True)
    toml_name = NAME.replace(ESC, "\\u001b").replace(BEL, "\\u0007")
    config.write_text(f"""version = 1

[[instances]]
id = "shiny"
name = "{toml_name}"
url = "{shiny.url}"

[[instances]]
id = "broken"
url = "{broken.url}"

[[instances]]
id = "liar"
url = "{liar.url}"
""")
    return shiny, broken, liar


def test_every_printing_command_shows_hostile_text_safely(hostile_fleet, monkeypatch):
    assert_safe(ok("list"), "[red]x[/red] [/b]", "\\x1b]0;OWNED\\a")

    health = run("health", "--timeout", "5")
    assert health.exit_code == 4
    assert_safe(health, "boom\\x1b]0;OWNED\\a\\x1b[2J[red]x[/red][/bad]", "[/bad]", "[red]x[/red] [/b]")

    rows = {row["id"]: row for row in json.loads(run("health", "--json").stdout)}
    assert rows["shiny"]["version"] == NASTY  # JSON keeps the exact value (escaped by JSON itself)
    assert rows["shiny"]["name"] == NAME and f"evil{ESC}[31m:latest" in rows["shiny"]["models"]

    assert_safe(ok("models"), "[/bad]:latest", "evil\\x1b[31m:latest", "[link=http://evil.example]")
    # a name a server holds is looked up, not refused as a typed one would be (that was exit 2)
    assert_safe(ok("models", "--diff"), "evil\\x1b[31m:latest")
    assert_safe(ok("sync", "--dry-run"), "evil\\x1b[31m:latest")
    assert_safe(ok("pick", "--explain"), "broken", "boom\\x1b]0;OWNED")
    nowhere = run("pick", "-m", "nowhere", "--strict", "--explain")
    assert nowhere.exit_code == 3
    assert_safe(nowhere, "[link=http://evil.example]click[/link]")

    generated = run("run", "llama3.2", "hi", "--instance", "liar")
    assert generated.exit_code == 1
    assert_safe(generated, "boom\\x1b]0;OWNED\\a\\x1b[2J[red]x[/red]")
    embedded = run("embed", "nomic-embed-text", "text", "--instance", "liar")
    assert embedded.exit_code == 1
    assert_safe(embedded, "boom\\x1b]0;OWNED\\a\\x1b[2J[red]x[/red]")

    exported = run("export", "--format", "litellm")
    assert exported.exit_code == 0
    assert_safe(exported, "broken: was unhealthy at its last check (HTTP 500: boom")

    completions = complete_model("")  # shell completion never inserts an escape sequence into a command line
    assert "[/bad]:latest" in completions and not any(ESC in name for name in completions)

    real_show = output.show

    def show_then_stop(renderable):  # the first table of the watch, then Ctrl-C
        real_show(renderable)
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "show", show_then_stop)
    watched = run("health", "--watch", "--interval", "1", "--timeout", "5")
    assert watched.exit_code == 130
    assert_safe(watched, "health at", "boom\\x1b]0;OWNED", "[/bad]")


def test_a_model_answer_cannot_drive_the_terminal_but_a_pipe_gets_it_exact(hostile):
    lines = [{"response": f"hi{ESC}]0;OWNED{BEL}{ESC}[2J", "done": False}, {"response": "\tthere\n", "done": False},
             {"response": "", "done": True}]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()

    def generate(handler):
        from hostile_server import send

        send(handler, 200, body, "application/x-ndjson")

    server = hostile({**ollama_like(), "/api/generate": generate})
    Fleet().add(server.url, name="talker")
    shown = written_to_a_terminal("run", "llama3.2", "hi")
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert b"hi\\x1b]0;OWNED\\a\\x1b[2J" in shown and b"\tthere" in shown
    piped = subprocess.run([sys.executable, "-m", "ollamactl", "run", "llama3.2", "hi"], capture_output=True,
                           env=os.environ.copy(), timeout=30)
    assert piped.returncode == 0 and piped.stdout == f"hi{ESC}]0;OWNED{BEL}{ESC}[2J\tthere\n".encode()
