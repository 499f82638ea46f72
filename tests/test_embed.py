"""`ollamactl embed` against simulated instances: fleet-wide batches, order, retries, legacy, digests, inputs."""

import json
import os
import signal
import subprocess
import sys
import time

from fleet_setup import register
from typer.testing import CliRunner

from ollamactl.cli.app import app
from ollamactl.core.fleet import Fleet
from ollamactl.sim import SimModel

MODEL = "nomic-embed-text"


def invoke(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input)


def texts(count, prefix="text"):
    return [f"{prefix} number {n}" for n in range(count)]


def embeds(sim_instance, path="/api/embed"):
    return [r for r in sim_instance.requests if r.path == path]


def vectors_via(instance_name, items):
    """Reference vectors from one instance alone."""
    result = invoke("embed", MODEL, *items, "--instance", instance_name)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["embeddings"]


def test_order_is_kept_with_uneven_instance_speeds(sim):
    slow, fast = sim.add(latency=0.05), sim.add(latency=0)
    register(slow, fast)
    items = texts(60)
    result = invoke("embed", MODEL, *items, "--batch-size", "3")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"] == MODEL and len(out["embeddings"]) == 60
    assert out["embeddings"] == vectors_via("sim2", items)
    assert len(embeds(fast)) > len(embeds(slow)) > 0  # both worked; the fast one took more batches
    assert slow.max_in_flight <= 2 and fast.max_in_flight <= 2


def test_ndjson_lines_come_in_input_order(sim):
    slow, fast = sim.add(latency=0.05), sim.add()
    register(slow, fast)
    items = texts(25)
    result = invoke("embed", MODEL, *items, "--batch-size", "2", "--ndjson", "--per-instance", "3")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["index"] for line in lines] == list(range(25))
    assert [line["embedding"] for line in lines] == vectors_via("sim2", items)
    assert slow.max_in_flight <= 3


def test_a_batch_failing_on_one_instance_is_served_by_the_other(sim):
    broken, good = sim.add(), sim.add()
    ids = register(broken, good)
    broken.set_fault("http500")
    items = texts(40)
    result = invoke("embed", MODEL, *items, "--batch-size", "4", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["embeddings"] == vectors_via("sim2", items)
    assert "HTTP 500" in result.stderr
    assert 1 <= len(embeds(broken)) <= 2  # it failed once per worker, then was avoided
    assert Fleet().store.read()["breaker"][ids[0]]["failures"] >= 1


def test_a_batch_failing_everywhere_ends_with_the_instances_named(sim):
    a, b = sim.add(), sim.add()
    ids = register(a, b)
    a.set_fault("http500")
    b.set_fault("busy503")
    result = invoke("embed", MODEL, *texts(5))
    assert result.exit_code == 1
    assert "failed on every instance" in result.stderr
    assert ids[0] in result.stderr and ids[1] in result.stderr and "Traceback" not in result.stderr


def test_legacy_servers_use_api_embeddings_and_it_is_remembered(sim):
    old = sim.add(legacy=True)
    register(old)
    items = texts(9)
    result = invoke("embed", MODEL, *items, "--batch-size", "3", "--per-instance", "1")
    assert result.exit_code == 0, result.stderr
    assert len(embeds(old)) == 1 and len(embeds(old, "/api/embeddings")) == 9
    modern = sim.add()
    Fleet().add(modern.url, name="modern")
    assert json.loads(result.stdout)["embeddings"] == vectors_via("modern", items)


def test_different_digests_are_refused_unless_allowed(sim):
    a = sim.add(models=[SimModel(MODEL, digest="a" * 64, embedding=True)])
    b = sim.add(models=[SimModel(MODEL, digest="b" * 64, embedding=True)])
    ids = register(a, b)
    refused = invoke("embed", MODEL, "hello")
    assert refused.exit_code == 1
    assert ids[0] in refused.stderr and ids[1] in refused.stderr and "aaaaaaaaaaaa" in refused.stderr
    assert embeds(a) == embeds(b) == []
    allowed = invoke("embed", MODEL, "hello", "--allow-mixed")
    assert allowed.exit_code == 0 and len(json.loads(allowed.stdout)["embeddings"]) == 1


def test_model_not_found_is_retried_elsewhere_and_forgotten(sim):
    a, b = sim.add(), sim.add()
    ids = register(a, b)
    a.update(models=[SimModel("other", embedding=True)])
    result = invoke("embed", MODEL, *texts(8), "--batch-size", "2")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["embeddings"]) == 8
    names = [m["name"] for m in Fleet().store.read()["health"][ids[0]]["models"]]
    assert "nomic-embed-text:latest" not in names


def test_a_hung_instance_does_not_stall_the_job(sim):
    hung, good = sim.add(), sim.add()
    register(hung, good)
    hung.set_fault("hang")
    items = texts(30)
    started = time.monotonic()
    result = invoke("embed", MODEL, *items, "--batch-size", "3")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 8  # the first-byte timeout is 600 s: idle workers took the batches over
    assert json.loads(result.stdout)["embeddings"] == vectors_via("sim2", items)
    hung.set_fault(None)


def test_stdin_file_and_dash_inputs(sim, tmp_path):
    a = sim.add()
    register(a)
    items = ["first line", "second \u2028 line", "third"]
    expected = vectors_via("sim1", items)
    from_stdin = invoke("embed", MODEL, input="\n".join(items) + "\n")
    assert from_stdin.exit_code == 0 and json.loads(from_stdin.stdout)["embeddings"] == expected
    path = tmp_path / "in.txt"
    path.write_bytes(("\r\n".join(items)).encode())  # CRLF endings, no final newline
    from_file = invoke("embed", MODEL, "--file", str(path))
    assert from_file.exit_code == 0 and json.loads(from_file.stdout)["embeddings"] == expected
    dash = invoke("embed", MODEL, "--file", "-", input="\n".join(items))
    assert dash.exit_code == 0 and json.loads(dash.stdout)["embeddings"] == expected


def test_empty_lines_and_bad_input_exit_2_before_any_request(sim, tmp_path):
    a = sim.add()
    register(a)
    path = tmp_path / "in.txt"
    path.write_text("one\ntwo\n\nfour\n")
    result = invoke("embed", MODEL, "--file", str(path))
    assert result.exit_code == 2 and "line 3" in result.stderr and result.stdout == ""
    assert embeds(a) == []
    assert invoke("embed", MODEL, input="").exit_code == 2
    assert invoke("embed", MODEL, "a", "").exit_code == 2
    assert invoke("embed", MODEL, "a", "--file", str(path)).exit_code == 2
    assert invoke("embed", MODEL, "--file", str(tmp_path / "missing")).exit_code == 2
    assert invoke("embed", MODEL, "a", "--batch-size", "0").exit_code == 2


def test_piped_stdin_is_read_lazily_and_an_empty_line_still_exits_2(sim):
    a = sim.add()
    register(a)
    lines = "\n".join(texts(10)) + "\n\nlast\n"
    result = subprocess.run([sys.executable, "-m", "ollamactl", "embed", MODEL, "--ndjson", "--batch-size", "2"],
                            input=lines, capture_output=True, text=True, env=os.environ.copy(), timeout=30)
    assert result.returncode == 2 and "line 11 of stdin is empty" in result.stderr
    assert "Traceback" not in result.stderr
    indexes = [json.loads(line)["index"] for line in result.stdout.splitlines()]
    assert indexes == list(range(len(indexes)))  # whatever was written before is whole and in order
    good = subprocess.run([sys.executable, "-m", "ollamactl", "embed", MODEL, "--batch-size", "4"],
                          input="\n".join(texts(10)) + "\n", capture_output=True, text=True, env=os.environ.copy(),
                          timeout=30)
    assert good.returncode == 0 and len(json.loads(good.stdout)["embeddings"]) == 10


def test_keys_go_only_to_their_instance(sim, monkeypatch):
    a, b = sim.add(api_key="emb-key-a"), sim.add()
    monkeypatch.setenv("EMB_A", "emb-key-a")
    Fleet().add(a.url, name="a", api_key_env="EMB_A")
    Fleet().add(b.url, name="b")
    result = invoke("embed", MODEL, *texts(20), "--batch-size", "2", "--verbose")
    assert result.exit_code == 0, result.stderr
    assert {r.headers.get("authorization") for r in a.requests} == {"Bearer emb-key-a"}
    assert {r.headers.get("authorization") for r in b.requests} == {None}
    assert embeds(a) and embeds(b)
    assert "emb-key-a" not in result.stdout + result.stderr


def test_a_key_no_header_can_carry_fails_cleanly_naming_no_key(sim, monkeypatch):
    a = sim.add(api_key="whatever")
    monkeypatch.setenv("EMB_BAD", "emb-bad-secret\u00e9")
    Fleet().add(a.url, name="a", api_key_env="EMB_BAD")
    result = invoke("embed", MODEL, "one", "two", "--instance", "a", "--verbose")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "emb-bad-secret" not in result.stdout + result.stderr and "EMB_BAD" in result.stderr
    assert a.requests == []


def test_ctrl_c_with_stdin_still_open_exits_130_cleanly(sim):
    a = sim.add(latency=0.2)
    register(a)
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "embed", MODEL, "--batch-size", "1", "--ndjson"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=os.environ.copy())
    try:
        process.stdin.write(b"one\n")
        process.stdin.flush()
        assert process.stdout.readline().startswith(b'{"index":0,')  # reading stdin is blocked now
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and b"Traceback" not in err and b"Fatal" not in err


def test_progress_bar_draws_on_a_terminal_only(monkeypatch, capsys):
    from ollamactl.cli.routing.embed_batches import _Progress

    assert not _Progress(10_000, 64).enabled  # stderr is not a terminal here
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert not _Progress(100, 64).enabled  # a small input gets no bar
    bar = _Progress(10_000, 64)
    assert bar.enabled
    bar(640)
    bar(10_000)
    bar.stop()
    lazy = _Progress(None, 64)
    lazy(64)
    assert lazy.bar is None  # an input of unknown size starts its bar only once it is large
    lazy(1000)
    assert lazy.bar is not None
    lazy.stop()


def test_a_huge_line_is_read_whole(tmp_path):
    from ollamactl.cli.routing.request_input import _line_texts

    path = tmp_path / "huge.txt"
    path.write_bytes(b"x" * 40_000_000 + b"\nshort\n")  # one 40 MB text arriving in 64 KiB reads
    with path.open("rb") as stream:
        lengths = [len(text) for text in _line_texts(stream, "huge.txt")]
    assert lengths == [40_000_000, 5]  # (reads are joined once per line: no quadratic copying; no timing here)


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_text(sim, tmp_path):
    a = sim.add()
    register(a)
    expected = vectors_via("sim1", ["first", "second"])
    path = tmp_path / "notepad.txt"
    path.write_bytes(b"\xef\xbb\xbffirst\r\nsecond\r\n")
    from_file = invoke("embed", MODEL, "--file", str(path))
    from_stdin = invoke("embed", MODEL, input="\ufefffirst\nsecond\n")
    assert from_file.exit_code == 0 and json.loads(from_file.stdout)["embeddings"] == expected
    assert from_stdin.exit_code == 0 and json.loads(from_stdin.stdout)["embeddings"] == expected


def test_a_text_argument_that_is_not_utf8_exits_2(sim):
    a = sim.add()
    register(a)
    result = invoke("embed", MODEL, "fine", "bad \udcff")
    assert result.exit_code == 2 and "text argument 2 is not UTF-8" in result.stderr and embeds(a) == []
