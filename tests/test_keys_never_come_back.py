"""A server that echoes the Authorization header it got (issue 11, point 2): no key comes back out
of health, pick, run, embed, export or the state file, whether the key is in an environment variable
or stored in the registry."""

from __future__ import annotations

import json

from cli_helpers import ok, run
from hostile_server import answer, echo_authorization, ollama_like

from ollamactl.cli.completers import complete_model
from ollamactl.core.fleet import Fleet

ENV_KEY = "sk-env-7f3a9c1d2e4b5a6978"
STORED_KEY = "sk-stored-0a1b2c3d4e5f6a7b"


def test_an_echoing_server_never_gets_a_key_shown_or_stored(hostile, monkeypatch, isolated_env):
    monkeypatch.setenv("ECHO_KEY", ENV_KEY)
    sulky = hostile({"/api/version": echo_authorization(500)})  # unhealthy: its error quotes the header
    echo = hostile({**ollama_like(names=("llama3.2:latest", "nomic-embed-text:latest")),
                    "/api/generate": echo_authorization(500), "/api/embed": echo_authorization(500),
                    "/api/ps": echo_authorization(404)})
    stored = hostile({"/api/version": echo_authorization(500)})
    Fleet().add(sulky.url, name="sulky", api_key_env="ECHO_KEY")
    Fleet().add(echo.url, name="echo", api_key_env="ECHO_KEY")
    Fleet().add(stored.url, name="stored", api_key=STORED_KEY)

    outputs = []
    health = run("health")
    assert health.exit_code == 4 and "invalid token: Bearer ***" in health.stdout
    outputs.append(health)
    rows = {row["name"]: row for row in json.loads(run("health", "--json").stdout)}
    assert rows["sulky"]["error"] == "HTTP 500: invalid token: Bearer ***"
    assert rows["stored"]["error"] == "HTTP 500: invalid token: Bearer ***"
    outputs += [run("health", "--json"), ok("pick", "--explain"), run("pick", "-m", "nowhere", "--strict"),
                ok("models"), ok("models", "--json"), run("export", "--format", "json"),
                run("export", "--format", "litellm"), run("refresh")]
    generated = run("run", "llama3.2", "hi", "--instance", "echo", "--verbose")
    assert generated.exit_code == 1 and "Bearer ***" in generated.stderr
    embedded = run("embed", "nomic-embed-text", "a", "--instance", "echo", "--verbose")
    assert embedded.exit_code == 1 and "Bearer ***" in embedded.stderr
    outputs += [generated, embedded]
    assert all(auth in (f"Bearer {ENV_KEY}", f"Bearer {STORED_KEY}") for _, _, auth in sulky.seen + stored.seen)

    for result in outputs:
        shown = result.stdout + result.stderr
        assert ENV_KEY not in shown and STORED_KEY not in shown, shown
    state = (isolated_env["state"] / "state.json").read_text()
    assert "Bearer ***" in state and ENV_KEY not in state and STORED_KEY not in state


def test_cached_words_are_scrubbed_again_when_a_key_changes(hostile, monkeypatch):
    """An error cached before the key was registered still never shows it (export reads the cache)."""
    sulky = hostile({"/api/version": answer({"error": f"token {ENV_KEY} expired"}, 500)})
    Fleet().add(sulky.url, name="sulky")
    run("health")
    monkeypatch.setenv("ECHO_KEY", ENV_KEY)
    ok("update", "sulky", "--api-key-env", "ECHO_KEY")
    exported = run("export", "--format", "json")
    assert ENV_KEY not in exported.stdout + exported.stderr and "token *** expired" in exported.stdout


def test_cached_words_never_show_a_key_configured_after_they_were_stored(hostile, monkeypatch):
    """Words a check stored before the key was configured (by an earlier command, or a background
    refresh started before it) are read from the cache, not probed again, by models, pick and
    completion: none of them shows the key once it is configured (a model name holding it is left out)."""
    sulky = hostile({"/api/version": answer({"error": f"token {ENV_KEY} expired"}, 500)})
    leaky = hostile(ollama_like(names=(f"leak-{ENV_KEY}:latest",)))
    Fleet().add(sulky.url, name="sulky")
    Fleet().add(leaky.url, name="leaky")
    with Fleet().locations.registry.open("a") as handle:  # the cached words stay in use (no probe hides them)
        handle.write("\n[settings]\nhealth_ttl = 3600\nunhealthy_ttl = 3600\nstale_ttl = 3600\n")
    assert ENV_KEY in run("health").stdout  # not a key yet: shown, and cached as it is
    checks = [request for request in sulky.seen + leaky.seen if request[1] == "/api/version"]
    monkeypatch.setenv("ECHO_KEY", ENV_KEY)
    ok("update", "sulky", "--api-key-env", "ECHO_KEY")

    outputs = [run("models"), run("models", "--json"), run("models", "--diff"), run("pick", "--explain"),
               run("pick", "-m", "nowhere", "--strict"), run("pick", "-m", "nowhere", "--explain", "--strict")]
    assert [request for request in sulky.seen + leaky.seen if request[1] == "/api/version"] == checks  # cached
    for result in outputs:
        shown = result.stdout + result.stderr
        assert ENV_KEY not in shown and "***" in shown, shown
    assert "unhealthy (HTTP 500: token *** expired)" in outputs[0].stderr
    assert "leak-" not in outputs[0].stdout + outputs[1].stdout  # a name holding a key: left out, not rewritten
    assert "unhealthy: HTTP 500: token *** expired" in outputs[3].stderr
    assert complete_model("leak") == []  # a name holding a key is no completion


def test_a_watch_scrubs_every_configured_key_as_a_check_does(hostile):
    """A server quoting another instance's key: `health --watch` hides it as `health` does."""
    sulky = hostile({"/api/version": answer({"error": f"token {STORED_KEY} expired"}, 500)})
    watched = Fleet().add(sulky.url, name="sulky")
    Fleet().add(hostile(ollama_like()).url, name="stored", api_key=STORED_KEY)
    assert Fleet().check("sulky")[0].error == "HTTP 500: token *** expired"
    seen = []
    Fleet().watch([watched], interval=0.5, timeout=2.0, on_start=lambda _: None, on_result=seen.append,
                  on_tick=lambda: None, stop=lambda: bool(seen))
    assert seen[0].error == "HTTP 500: token *** expired"
    state = Fleet().locations.state_file.read_text()  # the watch saved what it saw, scrubbed too
    assert STORED_KEY not in state and "token ***" in state
