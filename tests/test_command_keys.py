"""Commands get the key of the instance they were given, and only that one (issue 21, point 5):
`OLLAMA_HOST=$(ollamactl pick -m M)` with the official `ollama` client failed 10/30 with 401 and
`exec` 3/30 on a fleet where one instance needs a key; the client reads OLLAMA_API_KEY for every
request. Real processes: `ollamactl exec`, bash's `eval "$(ollamactl pick -f env)"`, and the
official client against simulated instances that refuse a missing or wrong key."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cli_helpers import ok
from fleet_setup import prime
from lease_helpers import finish, ollamactl

from ollamactl.core.fleet import Fleet

KEY_VAR = "COMMAND_KEYS_TEST_KEY"
KEY = "sk-it's a $key `with` \"quotes\""  # what a shell would mangle unquoted
CLOUD_KEY = "sk-users-own-cloud-key-5e6f"
# The official client, as a user's program: lists the models of the server it was given (401 raises).
CLIENT = "import ollama; print(sorted(m.model for m in ollama.Client().list().models))"


@pytest.fixture
def fleet(sim, monkeypatch):
    """A keyed instance (its key in $COMMAND_KEYS_TEST_KEY) and a plain one, in rotation for llama3.2."""
    monkeypatch.setenv(KEY_VAR, KEY)
    monkeypatch.setenv("OLLAMA_API_KEY", CLOUD_KEY)  # the user's own, inherited by every child
    for variable in ("NO_PROXY", "no_proxy"):  # the official client honours proxy settings
        monkeypatch.setenv(variable, "*")
    keyed, plain = sim.add(name="keyed", api_key=KEY), sim.add(name="plain")
    Fleet().add(keyed.url, name="sim1", api_key_env=KEY_VAR)
    Fleet().add(plain.url, name="sim2")
    prime()
    return {"keyed": keyed, "plain": plain}


def test_exec_gives_the_command_its_instances_key_and_no_other(fleet):
    for _ in range(4):  # round-robin: keyed, plain, keyed, plain
        code, out, err = finish(ollamactl("exec", "-m", "llama3.2", "--", sys.executable, "-c", CLIENT))
        assert code == 0, err
        assert "llama3.2:latest" in out
    for role, auth in (("keyed", f"Bearer {KEY}"), ("plain", None)):
        listed = [r for r in fleet[role].requests if r.path == "/api/tags"]
        assert len(listed) >= 2 and {r.headers.get("authorization") for r in listed[-2:]} == {auth}, role


def test_exec_removes_an_inherited_key_for_an_instance_without_one(fleet):
    shown = 'echo "${OLLAMA_API_KEY-unset}"'
    code, out, _ = finish(ollamactl("exec", "--instance", "sim2", "--", "sh", "-c", shown))
    assert (code, out) == (0, "unset\n")
    code, out, _ = finish(ollamactl("exec", "--instance", "sim1", "--", "sh", "-c", shown))
    assert (code, out) == (0, f"{KEY}\n")


def test_eval_of_pick_env_gives_a_client_the_key(fleet):
    script = f'set -a; eval "$(ollamactl pick -m llama3.2 -f env)"; set +a; "{sys.executable}" -c "$CLIENT"'
    env = {**os.environ, "CLIENT": CLIENT}
    env.pop("OLLAMA_API_KEY")
    for _ in range(4):
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "llama3.2:latest" in done.stdout
    keyed = [r for r in fleet["keyed"].requests if r.path == "/api/tags"]
    assert {r.headers.get("authorization") for r in keyed[-2:]} == {f"Bearer {KEY}"}


def test_pick_env_names_the_key_after_the_host_in_both_routes(fleet):
    fast = subprocess.run([sys.executable, "-m", "ollamactl", "pick", "-f", "env", "-n", "2", "-m", "llama3.2"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    lines = fast.stdout.splitlines()
    hosts = [line for line in lines if line.startswith("OLLAMA_HOST=")]
    assert len(hosts) == 2 and len(lines) == 3, lines
    keyed_at = lines.index(f"OLLAMA_HOST={fleet['keyed'].url}")
    assert lines[keyed_at + 1].startswith("OLLAMA_API_KEY=")
    typer_route = ok("pick", "-f", "env", "-m", "llama3.2", "-n", "2").stdout.splitlines()
    assert sorted(typer_route) == sorted(lines)  # the same lines (the rotation moved on by two)
    assert json.loads(ok("pick", "-f", "json", "-m", "llama3.2").stdout).get("api_key") is None  # env only
