"""nginx and HAProxy exports in front of a fleet as users run it: a busy instance, a model held by one.

The heaviest instance (weight 3) answers 503 "server busy" to every model request, as a loaded
Ollama does; one model is held by a single instance. Python clients send the body after the
headers (httpx, the official `ollama` client), which a gateway can retry only if it buffered the
body: every request must still be answered, by each engine, exactly as the export's header says
to run it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import cli_helpers
import httpx
import ollama
import openai
import pytest
from gateway_engines import HAProxy, Nginx, free_port

from ollamactl.core.export.gateway import CHECK_INTERVAL_S
from ollamactl.core.fleet import Fleet
from ollamactl.sim import SimModel

CHAT = SimModel("llama3.2:latest")
SOLO = SimModel("qwen3:4b")  # held by one chat instance only
EMBED = SimModel("nomic-embed-text:latest", embedding=True)
REQUESTS = 40
BODY_DELAY_S = 0.01


@pytest.fixture
def busy_fleet(sim):
    """{role: SimInstance}: "heavy" (weight 3) answers 503 to model requests; "solo" alone holds
    qwen3:4b; "spare" is the backup tier; "embedding" serves embeddings only."""
    sims = {
        "heavy": sim.add(name="heavy", models=[CHAT], loaded=[]),
        "solo": sim.add(name="solo", models=[CHAT, SOLO], loaded=[]),
        "plain": sim.add(name="plain", models=[CHAT], loaded=[]),
        "other": sim.add(name="other", models=[CHAT], loaded=[]),
        "spare": sim.add(name="spare", models=[CHAT], loaded=[]),
        "embedding": sim.add(name="embedding", models=[EMBED], loaded=[]),
    }
    options = {"heavy": {"type": "chat", "weight": 3}, "spare": {"type": "chat", "priority": "backup"},
               "embedding": {"type": "embedding"}}
    for role, instance in sims.items():
        Fleet().add(instance.url, id=role, **options.get(role, {"type": "chat"}))
    cli_helpers.run("refresh")
    sims["heavy"].set_fault("busy503")
    for instance in sims.values():
        instance.requests.clear()
    return sims


class Gateway(NamedTuple):
    engine: str
    url: str
    text: str  # the exported file
    warnings: str  # what the export said on stderr


ENGINES = {"nginx": lambda tmp: Nginx(tmp / "nginx"), "haproxy": lambda tmp: HAProxy(tmp / "haproxy", env={})}


@contextlib.contextmanager
def serving(name: str, tmp_path: Path) -> Iterator[Gateway]:
    """The fleet's export, checked and started as its header says."""
    engine = ENGINES[name](tmp_path)
    conf, port = tmp_path / f"ollama.{name}", free_port()
    exported = cli_helpers.ok("export", "--format", name, "--listen", f"127.0.0.1:{port}", "-o", str(conf))
    engine.check(conf)
    try:
        yield Gateway(name, engine.start(conf, port).url, conf.read_text(), exported.stderr)
    finally:
        engine.stop()


@pytest.fixture(params=sorted(ENGINES))
def gateway(request, busy_fleet, tmp_path):
    with serving(request.param, tmp_path) as running:
        yield running


def generate(url: str, model: str, n: int) -> tuple[int, str]:
    """One request as httpx sends it: the headers, then the body in a write of its own (here a few
    ms later every time, as happens now and then on a busy network, so the test does not depend on
    whether the gateway's first read happened to catch both)."""
    path, body = (("/api/chat", {"messages": [{"role": "user", "content": f"hi {n}"}]}) if n % 2
                  else ("/api/generate", {"prompt": f"why {n}?"}))
    data = json.dumps({"model": model, "stream": False, **body}).encode()

    def late() -> Iterator[bytes]:
        time.sleep(BODY_DELAY_S)
        yield data

    with httpx.Client(trust_env=False, timeout=30) as client:
        reply = client.post(url + path, content=late(),
                            headers={"Content-Type": "application/json", "Content-Length": str(len(data))})
    return reply.status_code, reply.text[:200]


def failures(url: str, model: str) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: generate(url, model, n), range(REQUESTS)))
    return [answer for answer in answers if answer[0] != 200]


def model_requests(instance) -> list[str]:
    return [r.path for r in instance.requests if r.path in ("/api/generate", "/api/chat")]


def test_a_busy_instance_costs_httpx_clients_nothing(gateway, busy_fleet):
    url = gateway.url
    assert failures(url, "llama3.2") == []
    for n in range(5):  # and curl, which sends a small body with its headers
        body = json.dumps({"model": "llama3.2", "prompt": f"curl {n}", "stream": False})
        curl = subprocess.run(["curl", "-sS", "--fail", "--noproxy", "*", "-H", "Content-Type: application/json",
                               "--data-binary", body, f"{url}/api/generate"], capture_output=True, text=True,
                              timeout=60)
        assert curl.returncode == 0 and json.loads(curl.stdout)["done"] is True, curl.stderr
    assert model_requests(busy_fleet["heavy"])  # it was tried, and its 503s retried elsewhere
    assert model_requests(busy_fleet["spare"]) == []  # the backup tier is not needed while the others answer


@pytest.mark.parametrize("faults", [{"solo": "busy503", "plain": "http500"},
                                    {"solo": "busy503", "plain": "http500", "other": "refuse"}],
                         ids=["one-tier-0-server-left", "only-the-backup-left"])
def test_nginx_tries_every_server_of_the_pool_before_a_client_sees_a_failure(busy_fleet, tmp_path, faults):
    """nginx retries within each request, so its tries must reach every server, the backup tier
    included (3 tries for 5 servers gave 502s). HAProxy's retries go on through its rotation (each
    on another server than the last, not each server once), and it sends requests to a backup only
    once its checks find the others down: the busy-instance test is its zero-failure check."""
    for role, fault in faults.items():
        busy_fleet[role].set_fault(fault)
    with serving("nginx", tmp_path) as gateway:
        assert failures(gateway.url, "llama3.2") == []
    answered = {role: len(model_requests(busy_fleet[role])) for role in ("other", "spare")}
    assert answered == ({"other": REQUESTS, "spare": 0} if len(faults) == 2 else {"other": 0, "spare": REQUESTS})


def test_nginx_hands_traffic_back_to_tier_0_once_it_recovers(busy_fleet, tmp_path):
    """nginx rests a failing server for fail_timeout, which is CHECK_INTERVAL_S (it was 30 s: traffic
    stayed on the backup that long after tier 0 recovered; HAProxy's checks bring it back in 4 s)."""
    for role in ("heavy", "solo", "plain", "other"):
        busy_fleet[role].set_fault("http500")
    with serving("nginx", tmp_path) as gateway:
        assert failures(gateway.url, "llama3.2") == []
        assert len(model_requests(busy_fleet["spare"])) == REQUESTS
        for role in ("heavy", "solo", "plain", "other"):
            busy_fleet[role].set_fault(None)
        time.sleep(CHECK_INTERVAL_S + 0.5)  # the rest nginx gives a failed server
        busy_fleet["spare"].requests.clear()
        assert failures(gateway.url, "llama3.2") == []
    assert model_requests(busy_fleet["spare"]) == []


def test_a_model_held_by_one_instance_reaches_only_that_instance(gateway, busy_fleet):
    url = gateway.url
    assert failures(url, "qwen3:4b") == []
    client = ollama.Client(host=url, trust_env=False, timeout=30)
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="ollama", max_retries=0, timeout=30,
                        http_client=httpx.Client(trust_env=False))
    for n in range(5):
        assert client.chat(model="qwen3:4b", messages=[{"role": "user", "content": f"hi {n}"}]).message.content
        assert client.generate(model="qwen3:4b", prompt="why?").response
        reply = sdk.chat.completions.create(model="qwen3:4b", messages=[{"role": "user", "content": f"hi {n}"}])
        assert reply.choices[0].message.content
    for role in ("plain", "other", "spare"):
        assert [r for r in busy_fleet[role].requests if (r.body or {}).get("model", "").startswith("qwen3")] == []
    # a model nobody is known to hold goes to the whole pool (whoever may have pulled it since)
    busy_fleet["plain"].update(models=[CHAT, SimModel("gemma3:4b")])
    assert generate(url, "gemma3:4b", 0)[0] == 200
    with httpx.Client(trust_env=False, timeout=30) as plain_client:
        reply = plain_client.post(url + "/api/embed", json={"model": "nomic-embed-text", "input": "a"})
    assert reply.status_code == 200

