"""`ollamactl run` against simulated instances over real loopback sockets: streaming, failover, errors."""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from cli_helpers import one_error_line, run
from fleet_setup import prime, register
from lease_helpers import wait_until
from typer.testing import CliRunner

from ollamactl.cli.app import app
from ollamactl.core import http as ollama_http
from ollamactl.core.fleet import Fleet
from ollamactl.core.proxy import generate
from ollamactl.core.registry import instances as registry
from ollamactl.sim import SimModel


def invoke(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input)


def generates(sim_instance, path="/api/generate"):
    return [r for r in sim_instance.requests if r.path == path]


# ---------------------------------------------------------------------------------------------
# Streaming and options


def test_streams_text_with_a_final_newline(sim):
    a = sim.add(tokens=8)
    register(a)
    result = invoke("run", "llama3.2", "why", "is", "the", "sky", "blue")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("\n") and len(result.stdout.split()) == 8
    body = generates(a)[-1].body
    assert body["prompt"] == "why is the sky blue" and body["stream"] is True and body["model"] == "llama3.2"


def test_json_prints_every_object_and_no_stream_gives_the_same_text(sim):
    a = sim.add(tokens=6)
    register(a)
    lines = invoke("run", "llama3.2", "hi", "--json").stdout.splitlines()
    objects = [json.loads(line) for line in lines]
    assert len(objects) == 7 and objects[-1]["done"] is True
    streamed = "".join(o["response"] for o in objects)
    whole = invoke("run", "llama3.2", "hi", "--no-stream")
    assert whole.exit_code == 0 and whole.stdout == streamed + "\n"
    assert generates(a)[-1].body["stream"] is False


def test_prompt_from_stdin_dash_and_empty(sim):
    a = sim.add()
    register(a)
    assert invoke("run", "llama3.2", input="from stdin\n").exit_code == 0
    assert generates(a)[-1].body["prompt"] == "from stdin"
    assert invoke("run", "llama3.2", "-", input="dash").exit_code == 0
    assert generates(a)[-1].body["prompt"] == "dash"
    empty = invoke("run", "llama3.2", input="  \n")
    assert empty.exit_code == 2 and "prompt is empty" in empty.stderr


def test_options_are_typed_and_keep_alive_and_format(sim, tmp_path):
    a = sim.add()
    register(a)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}))
    result = invoke("run", "llama3.2", "hi", "-o", "num_ctx=8192", "-o", "temperature=0.5", "-o", "stop=[\"x\"]",
                    "-o", "penalize_newline=true", "-o", "mode=fast", "--keep-alive", "10m",
                    "--format", str(schema))
    assert result.exit_code == 0, result.stderr
    body = generates(a)[-1].body
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.5, "stop": ["x"], "penalize_newline": True,
                               "mode": "fast"}
    assert body["keep_alive"] == "10m" and body["format"]["type"] == "object"
    assert isinstance(json.loads(result.stdout)["n"], int)
    assert invoke("run", "llama3.2", "hi", "--format", "json", "--keep-alive", "0").exit_code == 0
    assert generates(a)[-1].body["format"] == "json" and generates(a)[-1].body["keep_alive"] == 0
    sent = len(a.requests)
    assert invoke("run", "llama3.2", "hi", "-o", "novalue").exit_code == 2
    assert invoke("run", "llama3.2", "hi", "--format", str(tmp_path / "missing.json")).exit_code == 2
    (tmp_path / "bad.json").write_text("{not json")
    bad = invoke("run", "llama3.2", "hi", "--format", str(tmp_path / "bad.json"))
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr
    assert len(a.requests) == sent  # usage errors send nothing


def test_options_out_of_range_or_not_finite_are_refused_before_sending(sim, tmp_path):
    """Issue 23: `-o temperature=1e400` sent "temperature": Infinity; num_ctx=-5 and top_k=-9 went unchecked."""
    a = sim.add()
    register(a)
    for given, words in (("temperature=1e400", "-o temperature=1e400: not a finite number"),
                         ("mode=[1e999]", "-o mode=[1e999]: the value holds 1e999, beyond the range of a number"),
                         ("mode=" + "[" * 500 + "]" * 500, "the value holds JSON nested more than 64 levels deep"),
                         ("num_ctx=-5", "-o num_ctx=-5: num_ctx must be from 1 to 2147483647"),
                         ("num_ctx=99999999999", "num_ctx must be from 1 to 2147483647"),
                         ("top_k=-9", "-o top_k=-9: top_k must be from 0 to"),
                         ("num_predict=-3", "num_predict must be from -2 to"),
                         ("top_p=1.5", "-o top_p=1.5: top_p must be from 0 to 1"),
                         ("temperature=-0.5", "temperature must be at least 0"),
                         ("num_ctx=1e23", "num_ctx takes a whole number")):
        result = invoke("run", "llama3.2", "hi", "-o", given)
        assert result.exit_code == 2 and words in result.stderr, (given, result.stderr)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)  # before: a RecursionError traceback
    result = invoke("run", "llama3.2", "hi", "--format", str(deep))
    assert result.exit_code == 2 and "holds JSON nested more than 64 levels deep" in result.stderr, result.stderr
    assert generates(a) == []  # nothing was sent
    assert invoke("run", "llama3.2", "hi", "-o", "num_predict=-2", "-o", "top_p=1", "-o", "temperature=0",
                  "-o", "seed=-1", "-o", "num_gpu=-1").exit_code == 0
    assert generates(a)[-1].body["options"] == {"num_predict": -2, "top_p": 1, "temperature": 0, "seed": -1,
                                                "num_gpu": -1}


def test_option_value_typing():
    from ollamactl.cli.routing.request_input import typed_value

    assert typed_value("42") == 42 and typed_value("-1") == -1
    assert typed_value("0.25") == 0.25 and typed_value("1e-3") == 0.001
    assert typed_value("true") is True and typed_value("false") is False
    assert typed_value('{"a": 1}') == {"a": 1} and typed_value("null") is None
    assert typed_value("nan") == "nan" and typed_value("hello world") == "hello world"


def test_chat_with_system_and_generate_with_system(sim):
    a = sim.add()
    register(a)
    assert invoke("run", "llama3.2", "hi", "--chat", "--system", "be brief").exit_code == 0
    request = generates(a, "/api/chat")[-1]
    assert request.body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert invoke("run", "llama3.2", "hi", "--system", "be brief").exit_code == 0
    assert generates(a)[-1].body["system"] == "be brief"


def test_think_sends_think_and_thinking_goes_to_stderr(sim):
    a = sim.add(tokens=4)
    register(a)
    result = invoke("run", "llama3.2", "hi", "--think")
    assert result.exit_code == 0 and generates(a)[-1].body["think"] is True
    assert len(result.stderr.split()) == 3 and len(result.stdout.split()) == 4  # 3 thinking tokens
    chat = invoke("run", "llama3.2", "hi", "--think", "--chat")
    assert chat.exit_code == 0 and len(chat.stderr.split()) == 3
    assert invoke("run", "llama3.2", "hi", "--no-think").exit_code == 0
    assert generates(a)[-1].body["think"] is False


# ---------------------------------------------------------------------------------------------
# Failover


@pytest.mark.parametrize("fault,words", [("refuse", "connection refused"), ("busy503", "HTTP 503: server busy"),
                                         ("http500", "HTTP 500: llama runner")])
def test_fails_over_before_output(sim, fault, words):
    a, b = sim.add(tokens=5), sim.add(tokens=5)
    ids = register(a, b)
    a.set_fault(fault)
    result = invoke("run", "llama3.2", "hi", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split()) == 5 and len(generates(b)) == 1
    assert words in result.stderr and f"trying {ids[1]}" in result.stderr
    assert Fleet().store.read()["breaker"][ids[0]]["failures"] == 1
    assert Fleet().store.read()["breaker"][ids[1]]["failures"] == 0


def test_model_not_found_fails_over_and_forgets_the_model(sim):
    a, b = sim.add(), sim.add()
    ids = register(a, b)
    a.update(models=[SimModel("other:latest")])  # the cache still says it has llama3.2
    result = invoke("run", "llama3.2", "hi", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert "not found" in result.stderr and len(generates(b)) == 1
    names = [m["name"] for m in Fleet().store.read()["health"][ids[0]]["models"]]
    assert "llama3.2:latest" not in names and names


def test_hang_is_bounded_by_the_first_byte_timeout_then_fails_over(sim):
    a, b = sim.add(), sim.add()
    register(a, b)
    a.set_fault("hang")
    result = invoke("run", "llama3.2", "hi", "--first-byte-timeout", "0.5", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert "first-byte timeout (0.5 s)" in result.stderr and len(generates(b)) == 1


def test_drip_is_bounded_by_the_first_byte_deadline_not_by_silence(sim):
    a, b = sim.add(drip_interval=0.05), sim.add()
    register(a, b)
    a.set_fault("drip")  # a byte every 50 ms: never silent, never done
    result = invoke("run", "llama3.2", "hi", "--first-byte-timeout", "0.6", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert "first-byte timeout (0.6 s)" in result.stderr  # the deadline ended it, not silence
    a.set_fault(None)


def test_slow_drip_completes_within_a_generous_deadline(sim):
    a = sim.add(tokens=2, drip_interval=0.0005)
    register(a)
    a.set_fault("drip")
    result = invoke("run", "llama3.2", "hi", "--first-byte-timeout", "20")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split()) == 2


@pytest.mark.parametrize("fault", ["midstream", "truncated"])
def test_no_retry_after_output_started(sim, fault):
    a, b = sim.add(tokens=20, fault=fault), sim.add(tokens=20)
    ids = register(a, b)
    result = invoke("run", "llama3.2", "hi")
    assert result.exit_code == 1
    assert len(result.stdout.split()) == 10  # the first half was printed and stays
    assert ids[0] in result.stderr and a.url in result.stderr and "not retried" in result.stderr
    assert "Traceback" not in result.stderr
    assert generates(b) == []  # the other instance got NO generate request
    assert Fleet().store.read()["breaker"][ids[0]]["failures"] == 1


def test_error_line_before_any_output_is_retried(sim):
    a, b = sim.add(tokens=1, fault="midstream"), sim.add(tokens=3)  # half of 1 token: the error comes first
    register(a, b)
    result = invoke("run", "llama3.2", "hi")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split()) == 3 and len(generates(b)) == 1


def test_all_attempts_failed_lists_each_instance(sim):
    a, b = sim.add(fault="busy503"), sim.add(fault="busy503")
    ids = register(a, b)
    result = invoke("run", "llama3.2", "hi")
    assert result.exit_code == 1
    assert "all 2 attempts failed" in result.stderr
    for instance_id, instance in zip(ids, (a, b), strict=True):
        assert f"{instance_id} ({instance.url}): HTTP 503" in result.stderr


def test_tries_bounds_the_attempts(sim):
    a, b = sim.add(fault="busy503"), sim.add()
    register(a, b)
    result = invoke("run", "llama3.2", "hi", "--tries", "1")
    assert result.exit_code == 1 and generates(b) == []
    assert invoke("run", "llama3.2", "hi", "--tries", "0").exit_code == 2


def test_no_eligible_instance_exits_3(sim, monkeypatch):
    a = sim.add(fault="refuse")
    Fleet().add(a.url)
    monkeypatch.setenv("OLLAMA_HOST", a.url)  # the default instance is refused as well
    result = invoke("run", "llama3.2", "hi")
    assert result.exit_code == 3, result.stderr


def test_instance_option_skips_selection(sim):
    a, b = sim.add(), sim.add()
    register(a, b)
    assert invoke("run", "llama3.2", "hi", "--instance", "sim2").exit_code == 0
    assert generates(a) == [] and len(generates(b)) == 1
    unknown = invoke("run", "llama3.2", "hi", "--instance", "nope")
    assert unknown.exit_code == 2


# ---------------------------------------------------------------------------------------------
# Keys and redirects


def test_401_is_not_retried_and_says_so(sim, monkeypatch):
    a, b = sim.add(api_key="right-key"), sim.add()
    monkeypatch.setenv("A_KEY", "right-key")
    Fleet().add(a.url, name="a", api_key_env="A_KEY")
    Fleet().add(b.url, name="b")
    prime()
    monkeypatch.setenv("A_KEY", "wrong-key-123")
    result = invoke("run", "llama3.2", "hi", "--verbose")
    assert result.exit_code == 1
    assert "HTTP 401: unauthorized (check the API key)" in result.stderr
    assert len(generates(a)) == 1 and generates(b) == []
    assert "wrong-key-123" not in result.stderr + result.stdout


def test_each_key_goes_only_to_its_own_instance(sim, monkeypatch):
    a, b, c = sim.add(api_key="key-a", fault="busy503"), sim.add(api_key="key-b", fault="busy503"), sim.add()
    monkeypatch.setenv("KEY_A", "key-a")
    monkeypatch.setenv("KEY_B", "key-b")
    Fleet().add(a.url, name="a", api_key_env="KEY_A")
    Fleet().add(b.url, name="b", api_key_env="KEY_B")
    Fleet().add(c.url, name="c")
    prime()
    result = invoke("run", "llama3.2", "hi", "--verbose", "--json")
    assert result.exit_code == 0, result.stderr
    for sim_instance, key in ((a, "key-a"), (b, "key-b"), (c, None)):
        sent = {r.headers.get("authorization") for r in sim_instance.requests}
        assert sent == ({f"Bearer {key}"} if key else {None})
    assert len(generates(a)) == len(generates(b)) == len(generates(c)) == 1
    for text in (result.stdout, result.stderr):
        assert "key-a" not in text and "key-b" not in text


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = ""
    hits = 0

    def do_POST(self):  # noqa: N802
        type(self).hits += 1
        self.send_response(307)
        self.send_header("Location", self.target + "/api/generate")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_redirects_are_not_followed_and_the_key_stays_home(sim, monkeypatch):
    elsewhere = sim.add()
    _Redirect.target = elsewhere.url
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("R_KEY", "redirect-secret")
        Fleet().add(f"127.0.0.1:{server.server_address[1]}", name="redir", api_key_env="R_KEY")
        result = invoke("run", "llama3.2", "hi", "--instance", "redir", "--verbose")
    finally:
        server.shutdown()
    assert result.exit_code == 1 and _Redirect.hits == 1
    assert f"redirected to {elsewhere.url}/api/generate" in result.stderr
    assert elsewhere.requests == [] and "redirect-secret" not in result.stderr


def test_key_never_in_error_words():
    instance = registry.Instance(id="x", name="x", url="http://x:1", api_key="sekrit")
    error = ollama_http.status_error(400, b'{"error":"bad header Bearer sekrit"}', None, "Bad Request", instance)
    assert "sekrit" not in str(error) and "***" in str(error) and not error.retryable
    assert ollama_http.status_error(404, b"404 page not found", None, "Not Found", instance).retryable is False
    assert ollama_http.status_error(404, b'{"error":"model \\"m\\" not found"}', None, "", instance).retryable
    assert ollama_http.status_error(503, b"{}", None, "Service Unavailable", instance).retryable


@pytest.mark.parametrize("raw, usable", [("padded-secret-77\n", True), ("  padded-secret-77 ", True),
                                          ("padded-secret-77\x01x", False), ("padded-secret-77\nx", False),
                                          ("padded-secret-77\u00e9", False)])
def test_a_key_is_sent_trimmed_or_refused_by_its_source_never_quoted(sim, monkeypatch, raw, usable):
    a = sim.add(api_key="padded-secret-77")
    monkeypatch.setenv("PAD_KEY", raw)
    Fleet().add(a.url, name="a", api_key_env="PAD_KEY")
    result = invoke("run", "llama3.2", "hi", "--instance", "a", "--verbose")
    assert "padded-secret-77" not in result.stderr + result.stdout
    if usable:  # a key file's newline or stray spaces
        assert result.exit_code == 0, result.stderr
        assert {r.headers.get("authorization") for r in generates(a)} == {"Bearer padded-secret-77"}
    else:  # httpx's own error quoted the key (or crashed with a traceback on non-ASCII)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
        assert "$PAD_KEY" in result.stderr and "cannot be sent" in result.stderr
        assert a.requests == []


def test_a_prompt_that_is_not_utf8_exits_2_before_any_request(sim):
    a = sim.add()
    register(a)
    as_argument = invoke("run", "llama3.2", "hi \udcff")  # how Python hands over a non-UTF-8 argv byte
    assert as_argument.exit_code == 2 and "not UTF-8" in as_argument.stderr
    piped = subprocess.run([sys.executable, "-m", "ollamactl", "run", "llama3.2"], input=b"hi \xff there\n",
                           capture_output=True, env=os.environ.copy(), timeout=30)
    assert piped.returncode == 2 and b"not UTF-8" in piped.stderr and b"Traceback" not in piped.stderr
    assert generates(a) == []


# ---------------------------------------------------------------------------------------------
# The real process: Ctrl-C


def test_ctrl_c_closes_and_exits_130_without_traceback(sim):
    a = sim.add(tokens=400, token_rate=40)
    register(a)
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "run", "llama3.2", "hi"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        first = process.stdout.read(20)
        assert first
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert b"Traceback" not in err and b"interrupted" in err
    assert len((first + rest).split()) < 400


def test_a_closed_stdout_ends_quietly(sim):
    a = sim.add(tokens=300, token_rate=100)
    register(a)
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "run", "llama3.2", "hi"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        assert process.stdout.read(10)
        process.stdout.close()  # like `| head -c 10`
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1 and err == b""


def test_the_process_ends_with_the_whole_answer_and_the_refresh_a_stale_cache_asked_for(sim):
    """The Typer-free route ends the process without the interpreter's teardown (cli.exits.leave):
    what was written is all out, the exit code is kept, and the background refresh that a run
    answered from a stale cache asked for (an atexit function) still starts."""
    a = sim.add(tokens=300)
    [instance_id] = register(a)
    Fleet().store.update(lambda data: data["health"][instance_id].update(checked_at=time.time() - 7))  # stale
    versions = sum(r.path == "/api/version" for r in a.requests)
    done = subprocess.run([sys.executable, "-m", "ollamactl", "run", "llama3.2", "hi"], capture_output=True,
                          env=os.environ.copy(), timeout=60)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert done.stdout.endswith(b"\n") and len(done.stdout.split()) == 300
    wait_until(lambda: sum(r.path == "/api/version" for r in a.requests) > versions, what="the refresh")
    missing = subprocess.run([sys.executable, "-m", "ollamactl", "run", "no-such-model", "hi"], capture_output=True,
                             env=os.environ.copy(), timeout=60)
    assert missing.returncode == 3 and missing.stdout == b"" and b"no-such-model" in missing.stderr


HI = generate.GenerateRequest("llama3.2", "hi")


def _core_instance(sim_instance):
    return registry.Instance(id="core", name="core", url=sim_instance.url)


def test_silence_between_lines_is_bounded_by_the_read_timeout(sim):
    a = sim.add(tokens=6, token_rate=2)  # a line every 0.5 s
    shown = []
    with pytest.raises(ollama_http.StreamBroken) as caught:
        generate.complete([_core_instance(a)], HI, lambda line, obj: bool(shown.append(obj) or obj.get("response")),
                          timeouts=ollama_http.Timeouts(read=0.2), feedback=None)
    assert "no new line for 0.2 s" in str(caught.value)  # the read timeout's words: it ended the wait
    assert len(shown) == 1


def test_a_slow_reader_of_our_output_is_not_the_servers_silence(sim):
    a = sim.add(tokens=4, token_rate=50)
    flushes = []

    def slow_flush():
        flushes.append(1)
        if len(flushes) == 1:
            time.sleep(0.6)  # stdout blocked by a slow consumer, longer than the read timeout

    result = generate.complete([_core_instance(a)], HI, lambda line, obj: bool(obj.get("response")),
                               timeouts=ollama_http.Timeouts(read=0.3), feedback=None, flush=slow_flush)
    assert result.final["done"] is True and len(flushes) >= 1


def test_a_server_faster_than_the_reader_still_gets_its_first_words_shown_at_once(monkeypatch):
    """Lines already waiting are written in one go, but a stream that never pauses (a fast server on
    a fast link) must not hold every word back until it ends: the first text goes out at once and
    the rest at least every FLUSH_EVERY_S."""
    clock = [1000.0]

    def tick() -> float:  # each look at the clock: 5 ms of stream
        clock[0] += 0.005
        return clock[0]

    monkeypatch.setattr(generate.time, "monotonic", tick)
    lines = [json.dumps({"response": f"w{n} ", "done": False}).encode() + b"\n" for n in range(200)]
    lines.append(json.dumps({"response": "", "done": True}).encode() + b"\n")

    class Stream:
        headers: dict = {}
        arrived = 0

        def iter_raw(self):
            for number, line in enumerate(lines, start=1):
                self.arrived = number
                yield line

    class Dog:
        deadline, fired = 0.0, False

        def move(self, when: float) -> None:
            self.deadline = when

    stream, flushes = Stream(), []
    final = generate._lines(stream, registry.Instance(id="a", name="a", url="http://a:11434"),
                            lambda raw, obj: True, generate._Attempt(Dog()), ollama_http.Timeouts(),
                            flush=lambda: flushes.append(stream.arrived), pending=lambda: True)  # more always waits
    assert final["done"] is True
    assert flushes[:1] == [1]  # the first words, as soon as they came
    most_held = generate.FLUSH_EVERY_S / 0.005 + 1  # chunks that arrive within FLUSH_EVERY_S
    gaps = [later - earlier for earlier, later in zip(flushes, flushes[1:], strict=False)]
    assert len(flushes) > 10 and max(gaps) <= most_held, flushes


# ---------------------------------------------------------------------------------------------
# TLS: an https instance is verified; a fleet without one builds no TLS context


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"response":"hello","done":false}\n{"response":"","done":true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_url():
    """An https server on 127.0.0.1 whose certificate comes from a throwaway CA nobody trusts."""
    import ssl
    from pathlib import Path

    tls = Path(__file__).parent / "data" / "tls"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "server.pem", tls / "server.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_https_instance_is_verified_and_an_http_one_needs_no_tls(sim, https_url, monkeypatch):
    import httpx
    import httpx._transports.default as httpx_transports

    from ollamactl.core.proxy.plain_transport import PlainTransport

    shown = []
    body = {"model": "llama3.2", "prompt": "hi"}  # HI's

    def emit(line, obj):
        shown.append(obj.get("response"))
        return bool(obj.get("response"))

    tls = registry.Instance(id="tls", name="tls", url=https_url)
    with pytest.raises(ollama_http.OllamaError, match="TLS certificate not trusted"):
        generate.complete([tls], generate.GenerateRequest("llama3.2", "hi", tries=1), emit,
                          timeouts=ollama_http.Timeouts())
    assert shown == []
    plain = sim.add(tokens=3)  # no https instance: served through PlainTransport, the same answer
    contexts = []  # every TLS context httpx's own transport builds (verify=False included)
    real_context = httpx_transports.create_ssl_context
    monkeypatch.setattr(httpx_transports, "create_ssl_context",
                        lambda *args, **kwargs: contexts.append(real_context(*args, **kwargs)) or contexts[-1])
    result = generate.complete([_core_instance(plain)], HI, emit, timeouts=ollama_http.Timeouts())
    assert result.instance.id == "core" and len([text for text in shown if text]) == 3
    assert contexts == []  # no TLS context was made for an http-only client
    # Should an https URL reach the plain transport after all, httpcore verifies it by default.
    with httpx.Client(transport=PlainTransport(httpx.Limits()), trust_env=False) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.post(https_url + "/api/generate", json=body)


@pytest.mark.parametrize("value, said", [
    ("", "--format is empty; use json or the path of a JSON-schema file"),  # was: cannot read '': Is a directory
    ("missing.json", "--format: no such file 'missing.json'; use json or the path of a JSON-schema file"),
])
def test_a_format_that_is_neither_json_nor_a_schema_file_is_refused_in_words(value, said):
    result = run("run", "llama3.2", "--format", value, "hi")
    assert result.exit_code == 2 and one_error_line(result) == f"ollamactl: error: {said}"
