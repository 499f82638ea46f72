"""The exports in the real engines: nginx, HAProxy and LiteLLM's Router in front of a mixed fleet.

The fleet: a weighted chat instance, a keyed chat instance, an embedding-only instance, a dead
one (registered, nothing listening) and a disabled one, all simulated on loopback. Each engine is
used exactly as the export's header says, and a client that sends its own Authorization header
must not get it past the gateway: a key reaches only its own instance.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cli_helpers
import httpx
import pytest
import yaml
from gateway_engines import HAProxy, Nginx, free_port

from ollamactl.core.fleet import Fleet
from ollamactl.sim import SimModel

KEY = "sk-sim-keyed-7f3a9c"
KEY_VAR = "GATEWAY_TEST_KEY"
CLIENT_KEY = "sk-client-own-1b2c"
CHAT = [SimModel("llama3.2:latest")]
EMBED = [SimModel("nomic-embed-text:latest", embedding=True)]
TOKENS, TOKEN_RATE = 8, 40.0  # each stream spans (TOKENS - 1) / TOKEN_RATE s between first and last line
STREAMS = 30


@pytest.fixture
def fleet(sim, monkeypatch):
    """{role: SimInstance} registered in the registry and refreshed; "dead" refuses connections."""
    monkeypatch.setenv(KEY_VAR, KEY)
    paced = {"tokens": TOKENS, "token_rate": TOKEN_RATE}
    sims = {
        "weighted": sim.add(name="weighted", models=CHAT, loaded=[], **paced),
        "keyed": sim.add(name="keyed", models=CHAT, loaded=[], api_key=KEY, **paced),
        "embedding": sim.add(name="embedding", models=EMBED, loaded=[]),
        "dead": sim.add(name="dead", models=CHAT, loaded=[], **paced),
        "disabled": sim.add(name="disabled", models=CHAT + EMBED, loaded=[], **paced),
    }
    options = {"weighted": {"type": "chat", "weight": 2}, "keyed": {"type": "chat", "api_key_env": KEY_VAR},
               "embedding": {"type": "embedding"}, "dead": {"type": "chat"},
               "disabled": {"type": "both", "enabled": False}}
    for role, instance in sims.items():
        Fleet().add(instance.url, id=role, **options[role])
    cli_helpers.run("refresh")  # the health cache LiteLLM's model lists come from
    sims["dead"].set_fault("refuse")
    for instance in sims.values():
        instance.requests.clear()
    return sims


def export(*args: str):
    result = cli_helpers.ok("export", *args)
    assert KEY not in result.stdout + result.stderr
    return result


def written(path: Path, mode: int) -> str:
    assert stat.S_IMODE(path.stat().st_mode) == mode, oct(path.stat().st_mode)
    return path.read_text()


def stream_generate(url: str, client_key: bool) -> tuple[bool, float]:
    """One streamed generate: (succeeded, seconds between the first and the last line)."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"} if client_key else {}
    body = {"model": "llama3.2", "prompt": "why is the sky blue?"}
    with httpx.Client(trust_env=False, timeout=30) as client, \
            client.stream("POST", f"{url}/api/generate", json=body, headers=headers) as response:
        stamps, final = [], None
        for line in response.iter_lines():
            if line.strip():
                stamps.append(time.monotonic())
                final = json.loads(line)
    done = response.status_code == 200 and final is not None and final.get("done") is True
    return done, (stamps[-1] - stamps[0]) if stamps else 0.0


def embed(url: str, path: str, body: dict) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=30) as client:
        return client.post(f"{url}{path}", json=body, headers={"Authorization": f"Bearer {CLIENT_KEY}"})


def assert_serves_the_fleet(url: str, fleet) -> None:
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda n: stream_generate(url, client_key=n % 2 == 0), range(STREAMS)))
    assert [ok for ok, _ in results] == [True] * STREAMS
    span = (TOKENS - 1) / TOKEN_RATE
    # streamed, not held back: lines arrive spread out as the tokens were produced (the median, since a
    # client thread that starts reading late on a busy machine finds its whole stream already there)
    spreads = sorted(spread for _, spread in results)
    assert spreads[STREAMS // 2] >= span / 2, spreads

    for _ in range(3):
        assert embed(url, "/api/embed", {"model": "nomic-embed-text", "input": ["a", "b"]}).status_code == 200
        assert embed(url, "/api/embeddings", {"model": "nomic-embed-text", "prompt": "a"}).status_code == 200
    embed(url, "/v1/embeddings", {"model": "nomic-embed-text", "input": "a"})  # routed (the simulator has no /v1)

    with httpx.Client(trust_env=False, timeout=10) as client:
        root = client.get(url + "/")
        assert (root.status_code, root.text) == (200, "Ollama is running")
        assert client.head(url + "/").status_code == 200

    paths = {role: [r.path for r in instance.requests] for role, instance in fleet.items()}
    generates = {role: paths[role].count("/api/generate") for role in paths}
    assert generates["weighted"] > 0 and generates["keyed"] > 0, generates
    assert generates["weighted"] >= generates["keyed"], generates  # weight 2 against 1
    embedding_paths = {"/api/embed", "/api/embeddings", "/v1/embeddings"}
    assert {p for p in paths["embedding"] if p in embedding_paths} == embedding_paths
    for role in ("weighted", "keyed"):
        assert not embedding_paths & set(paths[role]), (role, paths[role])
    assert "/api/generate" not in paths["embedding"]
    assert paths["disabled"] == [] and paths["dead"] == []

    keyed = fleet["keyed"].requests
    assert keyed and {r.headers.get("authorization") for r in keyed} == {f"Bearer {KEY}"}
    for role in ("weighted", "embedding"):
        assert {r.headers.get("authorization") for r in fleet[role].requests} == {None}, role


# ---------------------------------------------------------------------------------------------
# nginx and HAProxy


def serve_export_twice(engine, fmt: str, conf: Path, port: int, fleet, *extra: str) -> str:
    """Export to `conf`, check and start the engine, serve the fleet through it, then export again
    with -o (weighted instance now weight 3): the file is replaced and the engine starts on it.
    Returns the first export's text."""
    args = ("--format", fmt, "--listen", f"127.0.0.1:{port}", "-o", str(conf), *extra)
    assert export(*args).stdout == ""
    text = written(conf, 0o644)
    assert KEY not in text
    assert f"127.0.0.1:{fleet['dead'].port}" in text and f"127.0.0.1:{fleet['disabled'].port}" not in text
    engine.check(conf)
    try:
        gateway = engine.start(conf, port)
        assert_serves_the_fleet(gateway.url, fleet)
        gateway.stop()

        Fleet().update("weighted", weight=3)
        export(*args)
        assert [p.name for p in conf.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left
        replaced = written(conf, 0o644)
        assert replaced != text  # weight=3 / weight 3 now, and nothing else changed:
        assert replaced.replace("weight=3", "weight=2").replace("weight 3", "weight 2") == text
        engine.check(conf)
        again = engine.start(conf, port)
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(again.url + "/").status_code == 200
    finally:
        engine.stop()
    return text


def test_nginx_export_serves_the_mixed_fleet_with_keys_only_where_they_belong(fleet, tmp_path):
    conf, secrets = tmp_path / "ollama.conf", tmp_path / "keys.conf"
    left_out = export("--format", "nginx", "-o", str(conf))
    assert "keyed is left out: nginx cannot read the environment" in left_out.stderr
    assert "--secrets-file" in left_out.stderr and "unix:" not in written(conf, 0o644)

    text = serve_export_twice(Nginx(tmp_path / "nginx"), "nginx", conf, free_port(), fleet,
                              "--secrets-file", str(secrets))
    assert f"include {conf};" in text.splitlines()[1]  # the header's usage, as the engine was run
    assert KEY in written(secrets, 0o600)


def test_haproxy_export_serves_the_mixed_fleet_with_keys_only_where_they_belong(fleet, tmp_path):
    conf = tmp_path / "ollama.cfg"
    text = serve_export_twice(HAProxy(tmp_path / "haproxy", env={KEY_VAR: KEY}), "haproxy", conf, free_port(), fleet)
    assert f"haproxy -f /etc/haproxy/haproxy.cfg -f {conf}" in text.splitlines()[1]
    assert f'"Bearer ${{{KEY_VAR}}}"' in text


# ---------------------------------------------------------------------------------------------
# LiteLLM

PROBE = Path(__file__).with_name("litellm_router_probe.py")
# Enough calls that both live chat instances get some (weights 2:1: the keyed one gets none of 40
# with odds (2/3)**40, about 1e-7); each call takes a few ms once the router is built.
LITELLM_CALLS = 40


def litellm_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("litellm") is None:
        pytest.fail("litellm is not installed: it is in the test extra; run"
                    " `python -m pip install -e '.[test]'` (the README's test command does)")


def route_through_litellm(config: Path, calls: int = LITELLM_CALLS, embeds: int = 3) -> dict:
    """Build `litellm.Router` from the exported `config` in a child process and send it `calls`
    chat calls and `embeds` embedding calls (see litellm_router_probe.py); its answers."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", KEY_VAR: KEY,
           "NO_PROXY": "*"}
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(variable, None)
    probe = subprocess.run([sys.executable, str(PROBE), str(config), "llama3.2", "nomic-embed-text",
                            str(calls), str(embeds)], capture_output=True, text=True, env=env, timeout=240)
    assert probe.returncode == 0, probe.stderr[-3000:]
    answers = json.loads(probe.stdout.strip().splitlines()[-1])
    assert answers["blocked"] == []  # LiteLLM tried no address off this machine
    return answers


def assert_the_dead_server_is_kept_from_clients(answers: dict, config_text: str, dead_port: int) -> None:
    # LiteLLM draws a deployment at random for each try and cools none down after a refused
    # connection, so each try draws the dead server again with its weight's odds (1 in 4 here). The
    # export's retries are what keep it from the client: a call fails only when every one of its
    # 1 + num_retries tries drew the dead server (1 in 4**10, about 1e-6, here).
    tries = 1 + yaml.safe_load(config_text)["router_settings"]["num_retries"]
    for answer in answers["chat"]:
        if answer["ok"]:
            assert answer["text"]
        else:
            assert set(answer["connects"]) == {dead_port} and len(answer["connects"]) >= tries, answer


def test_litellm_router_built_from_the_export_answers_through_the_fleet(fleet, tmp_path):
    litellm_installed()
    config = tmp_path / "litellm.yaml"
    export("--format", "litellm", "-o", str(config))
    text = written(config, 0o644)
    assert KEY not in text and f"os.environ/{KEY_VAR}" in text
    assert f"LITELLM_MASTER_KEY=sk-... litellm --config {config} --host 127.0.0.1 --port 11434" in text
    assert fleet["disabled"].url not in text and fleet["dead"].url in text  # dead since its last check
    answers = route_through_litellm(config)
    assert_the_dead_server_is_kept_from_clients(answers, text, fleet["dead"].port)
    # ... and calls that drew it were answered by a retry (no call draws it with odds (3/4)**40, 1e-5)
    assert any(a["ok"] and fleet["dead"].port in a["connects"] for a in answers["chat"]), answers["chat"]
    assert answers["embed"] == [{"ok": True, "dimensions": 16}] * 3

    chats = {role: [r for r in instance.requests if r.path == "/api/chat"] for role, instance in fleet.items()}
    assert chats["weighted"] and chats["keyed"], {role: len(found) for role, found in chats.items()}
    assert [r.path for r in fleet["embedding"].requests] == ["/api/embed"] * 3
    assert fleet["disabled"].requests == []
    assert {r.headers.get("authorization") for r in fleet["keyed"].requests} == {f"Bearer {KEY}"}
    for role in ("weighted", "embedding"):
        assert {r.headers.get("authorization") for r in fleet[role].requests} == {None}, role


@pytest.mark.parametrize("strategy", ["least-latency", "least-busy"])
def test_litellm_export_of_other_strategies_keeps_a_dead_server_from_clients(fleet, tmp_path, strategy):
    """LiteLLM's latency-based-routing ranks a server that refuses connections fastest and sent it
    38 of 40 calls: the export must not choose a LiteLLM strategy that does that."""
    litellm_installed()
    with open(Fleet().locations.registry, "a", encoding="utf-8") as handle:
        handle.write(f'\n[settings]\nstrategy = "{strategy}"\n')
    config = tmp_path / "litellm.yaml"
    export("--format", "litellm", "-o", str(config))
    text = written(config, 0o644)
    answers = route_through_litellm(config, embeds=0)
    assert_the_dead_server_is_kept_from_clients(answers, text, fleet["dead"].port)
    # drawn at random, a call fails about 1 time in 1e6, so more than 3 of 40 means a strategy that
    # keeps choosing the dead server (latency-based-routing failed 38)
    failed = [answer for answer in answers["chat"] if not answer["ok"]]
    assert len(failed) <= 3, failed
