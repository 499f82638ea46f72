"""The simulator speaks Ollama's HTTP API over real sockets and fails the way real fleets fail."""

import asyncio
import json
import logging
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ollamactl.sim import SimConfig, SimModel, Simulator

ROOT = Path(__file__).resolve().parents[1]


def client(instance, timeout=5.0):
    return httpx.Client(base_url=instance.url, timeout=timeout, trust_env=False)


def post(instance, path, body, **kwargs):
    with client(instance) as http:
        return http.post(path, json=body, **kwargs)


def lines_of(response):
    return [json.loads(line) for line in response.text.split("\n") if line]


def raw_exchange(instance, data, read_for=1.0):
    """Send raw bytes on one socket; return everything received until close or `read_for` seconds."""
    received = b""
    with socket.create_connection(("127.0.0.1", instance.port), timeout=read_for) as conn:
        conn.sendall(data)
        deadline = time.monotonic() + read_for
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
    return received


def get_request(path="/", extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


# --- health endpoints ---------------------------------------------------------------------------


def test_root_answers_ollama_is_running_for_get_and_head(sim_instance):
    with client(sim_instance) as http:
        got = http.get("/")
        head = http.head("/")
    assert (got.status_code, got.text) == (200, "Ollama is running")
    assert got.headers["content-type"].startswith("text/plain")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "17"


def test_unknown_path_is_plain_404_and_wrong_method_is_405(sim_instance):
    with client(sim_instance) as http:
        missing = http.get("/api/nope")
        wrong = http.get("/api/generate")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert missing.headers["content-type"].startswith("text/plain")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


def test_version_tags_and_ps_have_ollamas_shape(sim):
    instance = sim.add(version="0.5.1")
    with client(instance) as http:
        version = http.get("/api/version")
        tags = http.get("/api/tags").json()["models"]
        running = http.get("/api/ps").json()["models"]
    assert version.json() == {"version": "0.5.1"}
    assert version.headers["content-type"] == "application/json; charset=utf-8"
    assert [m["name"] for m in tags] == ["llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest"]
    for model in tags:
        assert model["model"] == model["name"] and model["size"] > 0 and len(model["digest"]) == 64
        assert set(model["details"]) == {
            "parent_model", "format", "family", "families", "parameter_size", "quantization_level",
        }  # fmt: skip
    assert [m["name"] for m in running] == ["llama3.2:latest"]
    assert {"expires_at", "size_vram", "context_length", "digest", "details"} <= set(running[0])


def test_same_tag_has_same_digest_on_two_instances_unless_overridden(sim):
    same, also_same = sim.add(), sim.add(name="b")
    rebuilt = sim.add(models=[SimModel("llama3.2:latest", digest="ab" * 32)])
    digests = []
    for instance in (same, also_same, rebuilt):
        with client(instance) as http:
            digests.append(http.get("/api/tags").json()["models"][0]["digest"])
    assert digests[0] == digests[1] != digests[2] == "ab" * 32


def test_show_reports_details_and_capabilities(sim_instance):
    chat = post(sim_instance, "/api/show", {"model": "llama3.2"}).json()
    embedder = post(sim_instance, "/api/show", {"model": "nomic-embed-text"}).json()
    missing = post(sim_instance, "/api/show", {"model": "ghost"})
    assert {"modelfile", "parameters", "template", "details", "model_info"} <= set(chat)
    assert chat["capabilities"] == ["completion"] and embedder["capabilities"] == ["embedding"]
    assert missing.status_code == 404 and missing.json() == {"error": "model 'ghost' not found"}


# --- generate and chat --------------------------------------------------------------------------


def test_generate_streams_ndjson_fragments_then_a_done_line(sim_instance):
    response = post(sim_instance, "/api/generate", {"model": "llama3.2", "prompt": "Why is the sky blue?"})
    lines = lines_of(response)
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    assert all(line["done"] is False and line["model"] == "llama3.2" for line in lines[:-1])
    assert len(lines) == 13 and all(line["response"] for line in lines[:-1])
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop" and final["eval_count"] == 12
    assert isinstance(final["context"], list) and all(isinstance(i, int) for i in final["context"])
    for key in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_duration",
    ):
        assert isinstance(final[key], int) and final[key] > 0


def test_non_streaming_answer_equals_the_joined_stream(sim_instance):
    body = {"model": "llama3.2", "prompt": "hello"}
    streamed = "".join(line["response"] for line in lines_of(post(sim_instance, "/api/generate", body)))
    whole = post(sim_instance, "/api/generate", {**body, "stream": False})
    assert whole.headers["content-type"] == "application/json; charset=utf-8"
    assert whole.json()["response"] == streamed and len(streamed.split()) == 12
    assert whole.json()["done"] is True and "context" in whole.json()


def test_chat_streams_messages_and_thinking_comes_first(sim_instance):
    body = {"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "hi"}], "think": True}
    lines = lines_of(post(sim_instance, "/api/chat", body))
    assert all(line["message"]["role"] == "assistant" for line in lines)
    thinking = [line for line in lines if line["message"].get("thinking")]
    assert len(thinking) >= 2 and lines[: len(thinking)] == thinking
    whole = post(sim_instance, "/api/chat", {**body, "stream": False}).json()
    assert whole["message"]["content"] == "".join(line["message"]["content"] for line in lines)
    assert whole["message"]["thinking"] == "".join(line["message"]["thinking"] for line in thinking)
    assert "context" not in lines[-1]


def test_num_predict_sets_token_count_and_length_reason(sim_instance):
    body = {"model": "llama3.2", "prompt": "count", "options": {"num_predict": 5}, "stream": False}
    answer = post(sim_instance, "/api/generate", body).json()
    assert len(answer["response"].split()) == 5 and answer["eval_count"] == 5
    assert answer["done_reason"] == "length"


def test_text_depends_only_on_model_and_prompt(sim):
    first, second = sim.add(token_rate=1000), sim.add(name="other", tokens=12)
    answers = {
        post(inst, "/api/generate", {"model": name, "prompt": "same", "stream": False}).json()["response"]
        for inst in (first, second)
        for name in ("llama3.2", "llama3.2:latest", "registry.ollama.ai/library/llama3.2")
    }
    other_prompt = post(first, "/api/generate", {"model": "llama3.2", "prompt": "else", "stream": False})
    chat = post(second, "/api/chat", {"model": "llama3.2", "messages": [{"role": "user", "content": "same"}]})
    assert len(answers) == 1
    assert other_prompt.json()["response"] not in answers
    assert "".join(line["message"]["content"] for line in lines_of(chat)) in answers


def test_empty_prompt_loads_and_keep_alive_zero_unloads(sim_instance):
    loaded = post(sim_instance, "/api/generate", {"model": "qwen2.5:7b"})
    with client(sim_instance) as http:
        after_load = [m["name"] for m in http.get("/api/ps").json()["models"]]
        unloaded = http.post("/api/chat", json={"model": "qwen2.5:7b", "messages": [], "keep_alive": 0})
        after_unload = [m["name"] for m in http.get("/api/ps").json()["models"]]
    assert loaded.headers["content-type"].startswith("application/json")
    assert loaded.json()["done_reason"] == "load" and loaded.json()["done"] is True
    assert "qwen2.5:7b" in after_load
    assert unloaded.json()["done_reason"] == "unload" and unloaded.json()["message"]["content"] == ""
    assert "qwen2.5:7b" not in after_unload


@pytest.mark.parametrize(
    ("fmt", "keys"),
    [
        ("json", {"answer"}),
        ({"type": "object", "properties": {"city": {"type": "string"}, "n": {}}}, {"city", "n"}),
    ],
)
def test_format_makes_the_streamed_text_one_json_document(sim_instance, fmt, keys):
    body = {"model": "llama3.2", "prompt": "json please", "format": fmt}
    lines = lines_of(post(sim_instance, "/api/generate", body))
    assert len(lines) > 3
    assert set(json.loads("".join(line["response"] for line in lines))) == keys


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/chat", {"model": "", "messages": []}, 400, "model is required"),
        ("/api/generate", {"model": "ghost", "prompt": "x"}, 404, "model 'ghost' not found"),
        (
            "/api/chat",
            {"model": "nomic-embed-text", "messages": []},
            400,
            '"nomic-embed-text" does not support chat',
        ),
        ("/api/generate", {"model": "nomic-embed-text"}, 400, '"nomic-embed-text" does not support generate'),
        ("/api/embed", {"model": "llama3.2", "input": "x"}, 400, '"llama3.2" does not support embeddings'),
        (
            "/api/embed",
            {"model": "ghost", "input": "x"},
            404,
            'model "ghost" not found, try pulling it first',
        ),
        ("/api/generate", {"model": "llama3.2", "options": {"temperature": "hot"}}, 400, "temperature"),
        ("/api/generate", {"model": "llama3.2", "options": {"num_predict": "5"}}, 400, "num_predict"),
        ("/api/generate", {"model": "llama3.2", "options": {"num_predict": 1.5}}, 400, "num_predict"),
        ("/api/generate", {"model": "llama3.2", "format": "yaml"}, 400, "invalid format"),
        ("/api/generate", {"model": "llama3.2", "stream": "yes"}, 400, "cannot unmarshal"),
    ],
)
def test_bad_requests_get_ollamas_json_errors(sim_instance, path, body, status, message):
    response = post(sim_instance, path, body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_malformed_json_body_is_a_400(sim_instance):
    with client(sim_instance) as http:
        response = http.post("/api/generate", content=b"{model: llama3.2}")
    assert response.status_code == 400 and response.json()["error"].startswith("invalid character")


def test_unknown_option_keys_are_ignored(sim_instance):
    body = {
        "model": "llama3.2",
        "prompt": "x",
        "stream": False,
        "options": {"mystery": [1], "temperature": 0},
    }
    assert post(sim_instance, "/api/generate", body).status_code == 200


# --- embeddings ---------------------------------------------------------------------------------


def test_embed_returns_unit_vectors_in_input_order(sim_instance):
    forward = post(
        sim_instance, "/api/embed", {"model": "nomic-embed-text", "input": ["alpha", "beta"]}
    ).json()
    backward = post(
        sim_instance, "/api/embed", {"model": "nomic-embed-text", "input": ["beta", "alpha"]}
    ).json()
    single = post(
        sim_instance, "/api/embed", {"model": "nomic-embed-text", "input": "alpha", "dimensions": 4}
    )
    assert forward["model"] == "nomic-embed-text" and forward["prompt_eval_count"] == 2
    assert forward["embeddings"] == backward["embeddings"][::-1]
    assert forward["embeddings"][0] != forward["embeddings"][1]
    assert all(len(v) == 16 and math.isclose(math.hypot(*v), 1.0) for v in forward["embeddings"])
    [short] = single.json()["embeddings"]
    assert len(short) == 4 and math.isclose(math.hypot(*short), 1.0)


def test_legacy_embeddings_gives_the_same_vector_on_every_instance(sim):
    first, second = sim.add(), sim.add(legacy=True)
    vector = post(first, "/api/embed", {"model": "nomic-embed-text", "input": "hello"}).json()["embeddings"][
        0
    ]
    legacy = post(second, "/api/embeddings", {"model": "nomic-embed-text:latest", "prompt": "hello"}).json()
    assert legacy == {"embedding": vector}


def test_legacy_server_lacks_embed_and_ps_routes(sim):
    old = sim.add(legacy=True)
    embed = post(old, "/api/embed", {"model": "nomic-embed-text", "input": "x"})
    with client(old) as http:
        ps = http.get("/api/ps")
    assert (embed.status_code, embed.text) == (404, "404 page not found")
    assert embed.headers["content-type"].startswith("text/plain")
    assert (ps.status_code, ps.text) == (404, "404 page not found")


# --- timing -------------------------------------------------------------------------------------


def test_token_rate_delivers_the_stream_line_by_line_over_time(sim):
    instance = sim.add(token_rate=20, tokens=5)
    arrivals = []
    with client(instance) as http:
        start = time.monotonic()
        with http.stream("POST", "/api/generate", json={"model": "llama3.2", "prompt": "slow"}) as response:
            for line in response.iter_lines():
                arrivals.append((time.monotonic() - start, json.loads(line)))
    assert len(arrivals) == 6
    times = [arrival for arrival, _ in arrivals]
    assert times == sorted(times) and times[-1] - times[0] >= 0.1  # 4 gaps of 0.05 s between tokens
    assert arrivals[-1][1]["eval_duration"] == 250_000_000  # consistent with 20 tokens/s


def test_latency_is_paid_concurrently_not_summed(sim):
    instance = sim.add(latency=0.3)

    async def burst():
        async with httpx.AsyncClient(base_url=instance.url, trust_env=False) as http:
            return await asyncio.gather(*(http.get("/api/version") for _ in range(20)))

    start = time.monotonic()
    responses = asyncio.run(burst())
    elapsed = time.monotonic() - start
    assert all(r.status_code == 200 for r in responses)
    assert elapsed >= 0.3
    assert instance.max_in_flight >= 10  # answered at once, not one after the other


# --- faults -------------------------------------------------------------------------------------


def test_http500_fault_fails_every_api_call_but_not_the_root(sim):
    instance = sim.add(fault="http500")
    with client(instance) as http:
        tags = http.get("/api/tags")
        chat = http.post("/api/chat", json={"model": "llama3.2", "messages": []})
        root = http.get("/")
    assert tags.status_code == chat.status_code == 500
    assert tags.json() == {"error": "llama runner process has terminated: exit status 2"}
    assert root.status_code == 200


def test_busy503_fault_rejects_model_work_and_keeps_health_endpoints(sim):
    instance = sim.add(fault="busy503")
    with client(instance) as http:
        embed = http.post("/api/embed", json={"model": "nomic-embed-text", "input": "x"})
        generate = http.post("/api/generate", json={"model": "llama3.2", "prompt": "x"})
        health = [http.get(path).status_code for path in ("/", "/api/version", "/api/tags", "/api/ps")]
    assert embed.status_code == generate.status_code == 503
    assert generate.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
    assert health == [200, 200, 200, 200]


def test_garbage_fault_looks_like_another_web_server(sim):
    instance = sim.add(fault="garbage")
    with client(instance) as http:
        response = http.get("/api/version")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.text == "<html><body>It works!</body></html>"


def test_midstream_fault_ends_with_an_error_line_after_status_200(sim):
    instance = sim.add(fault="midstream", tokens=10)
    response = post(instance, "/api/generate", {"model": "llama3.2", "prompt": "x"})
    lines = lines_of(response)
    assert response.status_code == 200
    assert len(lines) == 6 and all("response" in line for line in lines[:5])
    assert "unexpected EOF" in lines[-1]["error"] and not any(line.get("done") for line in lines)
    whole = post(instance, "/api/generate", {"model": "llama3.2", "prompt": "x", "stream": False})
    assert whole.json()["done"] is True


def test_truncated_fault_ends_the_stream_cleanly_without_done(sim):
    instance = sim.add(fault="truncated", tokens=10)
    lines = lines_of(
        post(instance, "/api/chat", {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]})
    )
    assert len(lines) == 5 and not any(line["done"] or "error" in line for line in lines)


def test_drip_fault_sends_one_byte_per_interval(sim):
    instance = sim.add(fault="drip", drip_interval=0.05)
    received = raw_exchange(instance, get_request(), read_for=0.3)
    assert 2 <= len(received) <= 7 and b"HTTP/1.1 200 OK".startswith(received)
    with client(instance, timeout=0.02) as http, pytest.raises(httpx.ReadTimeout):
        http.get("/")


def test_clearing_drip_releases_the_rest_of_the_response(sim):
    instance = sim.add(fault="drip", drip_interval=0.05)
    result = {}
    request = get_request("/", "Connection: close\r\n")
    worker = threading.Thread(target=lambda: result.update(data=raw_exchange(instance, request, 5.0)))
    worker.start()
    time.sleep(0.15)
    instance.set_fault(None)
    worker.join(timeout=1.0)
    assert not worker.is_alive()
    assert result["data"].startswith(b"HTTP/1.1 200 OK") and result["data"].endswith(b"Ollama is running")


def test_hang_fault_reads_the_request_but_never_answers(sim):
    instance = sim.add(fault="hang")
    with client(instance, timeout=0.2) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/api/generate", json={"model": "llama3.2", "prompt": "anyone?"})
    assert instance.requests[-1].body == {"model": "llama3.2", "prompt": "anyone?"}


def test_clearing_hang_closes_hung_connections(sim):
    instance = sim.add(fault="hang")
    outcome = {}

    def hung_request():
        with client(instance, timeout=5.0) as http:
            try:
                http.get("/api/tags")
            except httpx.HTTPError as exc:
                outcome["error"] = exc

    worker = threading.Thread(target=hung_request)
    worker.start()
    deadline = time.monotonic() + 5.0
    while not instance.requests and time.monotonic() < deadline:  # hung, not merely not sent yet
        time.sleep(0.01)
    instance.set_fault(None)
    worker.join(timeout=2.0)
    assert not worker.is_alive() and isinstance(outcome["error"], httpx.RemoteProtocolError)
    with client(instance) as http:
        assert http.get("/api/tags").status_code == 200


def test_refuse_fault_closes_the_port_and_clearing_it_listens_again(sim_instance):
    with client(sim_instance) as http:
        assert http.get("/").status_code == 200  # leaves a pooled keep-alive connection
        sim_instance.set_fault("refuse")
        with pytest.raises(httpx.ConnectError):
            http.get("/")
        port = sim_instance.port
        sim_instance.set_fault(None)
        assert http.get("/").status_code == 200 and sim_instance.port == port


def test_an_instance_can_start_refusing(sim):
    instance = sim.add(fault="refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", instance.port), timeout=1).close()
    assert instance.port > 0


def test_unknown_fault_is_rejected():
    with pytest.raises(ValueError, match="unknown fault"):
        SimConfig(fault="explode")


# --- access control ----------------------------------------------------------------------------


def test_api_key_is_required_on_api_paths_when_set(sim):
    instance = sim.add(api_key="s3cret")
    with client(instance) as http:
        missing = http.get("/api/tags")
        wrong = http.get("/api/tags", headers={"Authorization": "Bearer nope"})
        right = http.get("/api/tags", headers={"Authorization": "Bearer s3cret"})
        root = http.get("/")
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"error": "unauthorized"}
    assert right.status_code == 200 and root.status_code == 200


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:11434", "8.8.8.8"])
def test_foreign_host_header_gets_an_empty_403(sim_instance, host):
    with client(sim_instance) as http:
        response = http.get("/api/version", headers={"Host": host})
    assert response.status_code == 403 and response.content == b""


@pytest.mark.parametrize("host", ["localhost", "localhost:11434", "127.0.0.1:9", "[::1]:11434", "0.0.0.0:1"])
def test_local_host_headers_are_accepted(sim_instance, host):
    with client(sim_instance) as http:
        assert http.get("/api/version", headers={"Host": host}).status_code == 200


# --- HTTP details -------------------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection_until_close(sim_instance):
    data = get_request("/api/version") + get_request("/", "Connection: close\r\n")
    received = raw_exchange(sim_instance, data, read_for=2.0)
    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert received.endswith(b"Ollama is running")  # then the server closed the connection
    assert b"Connection: close" in received.split(b'{"version"')[1]


def test_chunked_request_bodies_are_accepted(sim_instance):
    body = json.dumps({"model": "llama3.2"}).encode()
    head = (
        b"POST /api/show HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    )
    chunks = f"{len(body) - 5:x}\r\n".encode() + body[:-5] + b"\r\n5\r\n" + body[-5:] + b"\r\n0\r\n\r\n"
    request = head + b"\r\n" + chunks
    received = raw_exchange(sim_instance, request, read_for=2.0)
    assert received.startswith(b"HTTP/1.1 200 OK") and b'"capabilities":["completion"]' in received


def test_requests_are_recorded_with_lowercase_headers_and_parsed_bodies(sim_instance):
    post(sim_instance, "/api/generate", {"model": "llama3.2", "prompt": "rec"}, headers={"X-Trace": "7"})
    recorded = sim_instance.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/api/generate")
    assert recorded.headers["x-trace"] == "7" and recorded.body == {"model": "llama3.2", "prompt": "rec"}


def test_client_leaving_mid_stream_does_not_disturb_the_server(sim, caplog):
    instance = sim.add(token_rate=200, tokens=50)
    with (
        client(instance) as http,
        http.stream("POST", "/api/generate", json={"model": "llama3.2", "prompt": "x"}) as r,
    ):
        first = next(r.iter_lines())
    assert json.loads(first)["done"] is False
    time.sleep(0.1)  # the server keeps writing into the closed connection
    assert (
        post(instance, "/api/generate", {"model": "llama3.2", "prompt": "x", "stream": False}).status_code
        == 200
    )
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


# --- control --------------------------------------------------------------------------------------


def test_control_endpoint_reads_and_flips_the_config(sim):
    instance = sim.add(api_key="k")
    with client(instance) as http:
        shown = http.get("/_sim/config").json()
        busy = http.post("/_sim/config", json={"fault": "busy503", "tokens": 3})
        during = http.post("/api/generate", json={"model": "llama3.2"}, headers={"Authorization": "Bearer k"})
        cleared = http.post("/_sim/config", json={"fault": None})
        bad_field = http.post("/_sim/config", json={"colour": "red"})
        bad_fault = http.post("/_sim/config", json={"fault": "explode"})
    assert (
        shown["fault"] is None
        and shown["api_key"] == "***"
        and shown["models"][0]["name"] == "llama3.2:latest"
    )
    assert busy.status_code == 200 and busy.json()["fault"] == "busy503" and instance.config.tokens == 3
    assert during.status_code == 503
    assert cleared.json()["fault"] is None and instance.config.fault is None
    assert bad_field.status_code == 400 and bad_fault.status_code == 400 and instance.config.fault is None


def test_update_changes_models_and_loaded_at_run_time(sim_instance):
    sim_instance.update(models=[SimModel("phi3:mini"), "all-minilm"], loaded=["phi3:mini"])
    with client(sim_instance) as http:
        tags = [m["name"] for m in http.get("/api/tags").json()["models"]]
        running = [m["name"] for m in http.get("/api/ps").json()["models"]]
    assert tags == ["phi3:mini", "all-minilm:latest"] and running == ["phi3:mini"]


# --- lifecycle ------------------------------------------------------------------------------------


def test_stop_returns_promptly_with_hung_and_dripping_connections():
    simulator = Simulator()
    hung = simulator.add(fault="hang")
    dripping = simulator.add(fault="drip", drip_interval=10.0)
    sockets = [socket.create_connection(("127.0.0.1", inst.port)) for inst in (hung, dripping)]
    for conn in sockets:
        conn.sendall(get_request())
    time.sleep(0.1)
    simulator.stop()  # returns with the hung and dripping connections closed, not waited out
    simulator.stop()
    for conn in sockets:
        conn.settimeout(1.0)
        assert conn.recv(100) == b""  # closed by the server
        conn.close()
    with pytest.raises(RuntimeError):
        simulator.add()


def test_two_hundred_instances_share_one_simulator(sim):
    instances = [sim.add(name=f"n{i}") for i in range(200)]

    async def probe_all():
        limits = httpx.Limits(max_connections=250)
        async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=10) as http:
            return await asyncio.gather(*(http.get(f"{inst.url}/api/version") for inst in instances))

    responses = asyncio.run(probe_all())
    assert len({inst.port for inst in instances}) == 200
    assert all(r.json() == {"version": "0.12.6"} for r in responses)


def test_serve_forever_stops_cleanly_on_ctrl_c():
    script = (
        "from ollamactl.sim import serve_forever\n"
        "serve_forever(2, ready=lambda found: print(*(i.url for i in found), flush=True))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        urls = process.stdout.readline().split()
        versions = [httpx.get(f"{url}/api/version", trust_env=False).status_code for url in urls]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=5)
    finally:
        process.kill()
    assert len(urls) == 2 and versions == [200, 200]
    assert process.returncode == 0 and "Traceback" not in stderr


@pytest.mark.parametrize("fault", ["hang", "drip"])
def test_control_endpoint_answers_during_hang_and_drip(sim, fault):
    # The README's way out of a fault is `curl -X POST .../_sim/config -d '{"fault": null}'`: the
    # control endpoint itself must not hang or drip, or the fault could never be cleared that way.
    instance = sim.add(fault=fault, drip_interval=10.0)
    with client(instance, timeout=3.0) as http:
        shown = http.get("/_sim/config")
        cleared = http.post("/_sim/config", json={"fault": None})
    assert shown.status_code == 200 and shown.json()["fault"] == fault
    assert cleared.status_code == 200 and instance.config.fault is None


def test_unpaired_surrogate_escapes_read_as_replacement_characters(sim_instance):
    # Go's JSON decoder turns an unpaired \udXXX into U+FFFD; encoding it must not drop the connection.
    with client(sim_instance) as http:
        lone = http.post("/api/generate", content=b'{"model": "llama3.2", "prompt": "hi \\udcff", "stream": false}')
        replaced = http.post("/api/generate", json={"model": "llama3.2", "prompt": "hi \ufffd", "stream": False})
        embedded = http.post("/api/embed", content=b'{"model": "nomic-embed-text", "input": ["\\ud800"]}')
    assert lone.status_code == 200 and lone.json()["response"] == replaced.json()["response"]
    assert embedded.status_code == 200 and len(embedded.json()["embeddings"]) == 1


def test_huge_num_predict_and_dimensions_are_bounded(sim_instance):
    body = {"model": "llama3.2", "prompt": "x", "stream": False, "options": {"num_predict": 100_000}}
    answer = post(sim_instance, "/api/generate", body).json()
    assert answer["done_reason"] == "length" and answer["eval_count"] <= 4096
    vectors = post(sim_instance, "/api/embed", {"model": "nomic-embed-text", "input": "a", "dimensions": 100_000})
    assert vectors.status_code == 200 and len(vectors.json()["embeddings"][0]) == 16


@pytest.mark.parametrize("change", [{"models": [{"name": 5}]}, {"loaded": [5]}, {"tokens": 1.5},
                                    {"latency": "slow"}, {"latency": float("nan")}, {"legacy": "yes"},
                                    {"models": "llama3.2"}, {"token_rate": True}])
def test_control_endpoint_refuses_wrongly_typed_fields(sim_instance, change):
    with client(sim_instance) as http:
        refused = http.post("/_sim/config", content=json.dumps(change).encode())
        after = http.post("/api/generate", json={"model": "llama3.2", "prompt": "x", "stream": False})
    assert refused.status_code == 400 and after.status_code == 200


def test_a_handler_bug_answers_500_instead_of_dropping_the_connection(sim_instance, monkeypatch, caplog):
    from ollamactl.sim import endpoints

    async def broken(instance, body):
        raise RuntimeError("boom")

    monkeypatch.setitem(endpoints.ROUTES, "/api/version", {"GET": broken})
    with caplog.at_level(logging.ERROR, logger="ollamactl.sim"):
        response = post(sim_instance, "/api/generate", {"model": "llama3.2", "prompt": "x", "stream": False})
        with client(sim_instance) as http:
            failed = http.get("/api/version")
    assert response.status_code == 200
    assert failed.status_code == 500 and "boom" in failed.json()["error"]
