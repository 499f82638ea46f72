"""A key is removed from what a server said only where it stands as a whole word, and nothing
ollamactl lists or generates is rewritten (issue 21, point 1): with the placeholder key `ollama`
the nginx and HAProxy exports failed their engines' checks and LiteLLM's got `***_chat/...`; with
`llama` every model name became `***3.2` and `pick -m llama3.2 --strict` exited 3; with `K`,
HAProxy's `${KEYED_KEY}` became `${***EYED_***EY}`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ok, run
from gateway_engines import HAProxy, Nginx
from hostile_server import answer, ollama_like

from ollamactl.core.fleet import Fleet
from ollamactl.sim import SimModel

KEY_VAR = "KEYED_KEY"
KEYS = ["ollama", "llama", "K", "sk-proj-4f9a1c2e7b3d8a6f"]
NAMES = ["codellama:7b", "llama3.2:latest", "nomic-embed-text:latest", "qwen2.5:7b-instruct-q4_K_M"]
MODELS = [SimModel(name, embedding=name.startswith("nomic")) for name in NAMES]
PROBE = Path(__file__).with_name("litellm_router_probe.py")


@pytest.fixture(params=KEYS)
def keyed_fleet(request, sim, monkeypatch):
    """A keyed instance (its key in $KEYED_KEY) and a plain one, both holding MODELS, checked."""
    monkeypatch.setenv(KEY_VAR, request.param)
    keyed = sim.add(name="keyed", models=MODELS, loaded=[], api_key=request.param)
    plain = sim.add(name="plain", models=MODELS, loaded=[])
    Fleet().add(keyed.url, id="keyed", api_key_env=KEY_VAR)
    Fleet().add(plain.url, id="plain")
    ok("refresh")
    return request.param


def exports(tmp_path: Path) -> dict[str, str]:
    """The three gateway exports of the fleet, as files the engines read: {format: text}."""
    texts = {}
    for fmt, extra in (("nginx", ("--secrets-file", str(tmp_path / "keys.conf"))), ("haproxy", ()),
                       ("litellm", ())):
        ok("export", "--format", fmt, "-o", str(tmp_path / f"{fmt}.conf"), *extra)
        texts[fmt] = (tmp_path / f"{fmt}.conf").read_text()
    return texts


def test_models_pick_and_health_list_every_name_whole_with_any_key(keyed_fleet):
    listed = json.loads(ok("models", "--json").stdout)
    assert sorted(row["model"] for row in listed) == NAMES
    assert ok("pick", "-m", "llama3.2", "--strict").stdout.strip().startswith("http://127.0.0.1:")
    assert ok("pick", "-m", "qwen2.5:7b-instruct-q4_K_M", "--strict").exit_code == 0
    rows = json.loads(ok("health", "--json").stdout)
    assert [sorted(row["models"]) for row in rows] == [NAMES, NAMES]
    assert all(row["healthy"] and "***" not in json.dumps(row) for row in rows)


def test_the_exports_are_the_same_whatever_the_key_and_the_engines_take_them(keyed_fleet, tmp_path, monkeypatch):
    with_key = exports(tmp_path)
    assert keyed_fleet in (tmp_path / "keys.conf").read_text()  # the one file meant to hold it
    assert "***" not in "".join(with_key.values())
    assert f"${{{KEY_VAR}}}" in with_key["haproxy"] and f"os.environ/{KEY_VAR}" in with_key["litellm"]
    Nginx(tmp_path / "nginx").check(tmp_path / "nginx.conf")
    HAProxy(tmp_path / "haproxy", env={KEY_VAR: keyed_fleet}).check(tmp_path / "haproxy.conf")

    monkeypatch.setenv(KEY_VAR, "sk-unrelated-0c1d2e3f4a5b")
    assert exports(tmp_path) == with_key  # nothing in them depends on the key's value


@pytest.mark.parametrize("key", ["ollama", "sk-proj-4f9a1c2e7b3d8a6f"])
def test_litellm_answers_through_the_export_of_a_fleet_keyed_with(key, sim, monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_VAR, key)
    keyed = sim.add(name="keyed", models=MODELS, loaded=[], api_key=key)
    Fleet().add(keyed.url, id="keyed", api_key_env=KEY_VAR)
    ok("refresh")
    config = tmp_path / "litellm.yaml"
    ok("export", "--format", "litellm", "-o", str(config))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "NO_PROXY": "*"}
    probe = subprocess.run([sys.executable, str(PROBE), str(config), "llama3.2", "nomic-embed-text", "2", "1"],
                           capture_output=True, text=True, env=env, timeout=240)
    assert probe.returncode == 0, probe.stderr[-3000:]
    answers = json.loads(probe.stdout.strip().splitlines()[-1])
    assert [a["ok"] for a in answers["chat"]] == [True, True] and answers["embed"] == [{"ok": True, "dimensions": 16}]
    assert {r.headers.get("authorization") for r in keyed.requests if r.path == "/api/chat"} == {f"Bearer {key}"}


@pytest.mark.parametrize(("said", "shown"), [
    ("invalid key sk-abc123", "invalid key ***"),
    ("invalid token: Bearer ollama", "invalid token: Bearer ***"),
    ('key "ollama" refused; see ollama_chat docs for llama3.2', 'key "***" refused; see ollama_chat docs for llama3.2'),
    ("token=sk-abc123, expired.", "token=***, expired."),
])
def test_a_key_a_server_echoes_is_removed_as_a_whole_word_only(said, shown, hostile, monkeypatch):
    monkeypatch.setenv("K1", "sk-abc123")
    monkeypatch.setenv("K2", "ollama")
    echo = hostile({**ollama_like(), "/api/version": answer({"error": said}, 500)})
    Fleet().add(echo.url, name="echo", api_key_env="K1")
    Fleet().add(hostile(ollama_like()).url, name="other", api_key_env="K2")
    rows = {row["name"]: row for row in json.loads(run("health", "--json").stdout)}
    assert rows["echo"]["error"] == f"HTTP 500: {shown}"


def test_a_model_name_holding_a_key_as_a_whole_word_is_left_out_with_a_warning(sim, monkeypatch):
    monkeypatch.setenv(KEY_VAR, "llama")
    keyed = sim.add(name="keyed", models=[SimModel("llama-guard3:1b"), *MODELS], loaded=[], api_key="llama")
    Fleet().add(keyed.url, id="keyed", api_key_env=KEY_VAR)
    checked = ok("health")
    assert "keyed: 1 model(s) left out: a name holds a configured API key" in checked.stderr
    assert sorted(row["model"] for row in json.loads(ok("models", "--json").stdout)) == NAMES
