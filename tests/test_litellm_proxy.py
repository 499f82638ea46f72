"""The LiteLLM export in the real proxy process, started exactly as the export's header says, with
the openai SDK as its client: chat completions and embeddings with one backend dead, one busy
(503 on every generation) and a model that only one instance holds.

The fleet holds the embedding model on a `chat` instance too (it was exported as `ollama_chat/...`,
which LiteLLM refuses for embeddings: 50 of 50 embedding calls failed), and the SDK sends
`encoding_format`, which LiteLLM's Ollama provider refuses unless the config drops what it cannot map.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import cli_helpers
import httpx
import openai
import pytest
from gateway_engines import free_port

from ollamactl.core.fleet import Fleet
from ollamactl.sim import SimModel

CHAT = SimModel("llama3.2:latest")
EMBED = SimModel("nomic-embed-text:latest", embedding=True)
SOLO = SimModel("qwen3:4b")  # held by the "both" instance alone
MASTER_KEY = "sk-proxy-test-master-4e1d"
CALLS = 30
START_TIMEOUT_S = 180.0  # the proxy imports for a long while on a busy 2-core machine
TESTS = Path(__file__).parent


@pytest.fixture
def proxy_fleet(sim):
    """{role: SimInstance}: "dead" held both models at the last check and now refuses connections;
    "busy" (a chat instance) answers every generation 503 since the check, as a full Ollama queue does."""
    sims = {
        "chat": sim.add(name="chat", models=[CHAT, EMBED], loaded=[]),
        "both": sim.add(name="both", models=[CHAT, EMBED, SOLO], loaded=[]),
        "embedding": sim.add(name="embedding", models=[EMBED], loaded=[]),
        "dead": sim.add(name="dead", models=[CHAT, EMBED], loaded=[]),
        "busy": sim.add(name="busy", models=[CHAT], loaded=[]),
    }
    for role, instance in sims.items():
        kind = {"chat": "chat", "embedding": "embedding", "busy": "chat"}.get(role, "both")
        Fleet().add(instance.url, id=role, type=kind)
    cli_helpers.run("refresh")
    sims["dead"].set_fault("refuse")
    sims["busy"].set_fault("busy503")
    return sims


def litellm_program() -> str:
    found = shutil.which("litellm")
    if found is None:
        pytest.fail("the litellm program is not installed: the test extra has it and the proxy's dependencies;"
                    " run `python -m pip install -e '.[test]'` (the README's test command does)")
    return found


def start_as_the_header_says(config: Path, workdir: Path) -> tuple[subprocess.Popen, str, Path]:
    """`LITELLM_MASTER_KEY=... litellm --config ...`, word for word from the header's Use: line,
    held to loopback (tests/loopback_site); (process, its URL, the file listing refused connections)."""
    usage = next(line for line in config.read_text().splitlines() if line.startswith("# Use: "))
    words = shlex.split(usage.removeprefix("# Use: "))
    assert words[0] == "LITELLM_MASTER_KEY=sk-..." and words[1] == "litellm", usage
    port = int(words[words.index("--port") + 1])
    blocked = workdir / "blocked.txt"
    env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_TELEMETRY": "False", "NO_PROXY": "*", "LOOPBACK_GUARD_LOG": str(blocked),
           "PYTHONPATH": os.pathsep.join([str(TESTS / "loopback_site"), str(TESTS)])}
    log = (workdir / "litellm.log").open("ab")
    process = subprocess.Popen([litellm_program(), *words[2:]], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2, trust_env=False).status_code == 200:
                return process, url, blocked
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"litellm did not start on {url}:\n{(workdir / 'litellm.log').read_text()[-3000:]}")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_proxy_answers_the_openai_sdk_for_chat_and_embeddings_with_a_backend_dead(proxy_fleet, tmp_path):
    config = tmp_path / "litellm.yaml"
    port = free_port()
    cli_helpers.ok("export", "--format", "litellm", "--listen", f"127.0.0.1:{port}", "-o", str(config))
    process, url, blocked = start_as_the_header_says(config, tmp_path)
    try:
        # max_retries=0: a failure the proxy lets through reaches the test, not the SDK's own retry
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=60,
                               http_client=httpx.Client(trust_env=False))
        failed = []
        for n in range(CALLS):
            try:
                reply = client.chat.completions.create(model="llama3.2",
                                                       messages=[{"role": "user", "content": f"hi {n}"}])
                assert reply.choices[0].message.content
                solo = client.chat.completions.create(model="qwen3:4b",
                                                      messages=[{"role": "user", "content": f"solo {n}"}])
                assert solo.choices[0].message.content
                vectors = client.embeddings.create(model="nomic-embed-text", input=[f"text {n}", "b"])
                assert [len(item.embedding) for item in vectors.data] == [16, 16]
            except openai.OpenAIError as exc:
                failed.append(f"{type(exc).__name__}: {exc}"[:300])
    finally:
        stop(process)
    assert failed == []
    text = config.read_text()  # the chat instance's embedding model: no ollama_chat/ deployment LiteLLM refuses
    assert '"ollama/nomic-embed-text:latest"' in text and '"ollama_chat/nomic-embed-text:latest"' not in text
    assert not blocked.exists(), blocked.read_text()  # nothing left the machine
    embeds = {role: sum(r.path == "/api/embed" for r in proxy_fleet[role].requests) for role in proxy_fleet}
    assert embeds["chat"] == 0 and embeds["both"] > 0 and embeds["embedding"] > 0, embeds
    assert sum(r.path == "/api/chat" for r in proxy_fleet["chat"].requests) > 0
    assert sum(r.path == "/api/chat" for r in proxy_fleet["busy"].requests) > 0  # tried, refused, retried elsewhere
    solo_on = {role for role, instance in proxy_fleet.items()
               if any(r.path == "/api/chat" and (r.body or {}).get("model", "").startswith("qwen3")
                      for r in instance.requests)}
    assert solo_on == {"both"}, solo_on  # the model held by one instance went there only
