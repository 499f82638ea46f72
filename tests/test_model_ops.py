"""Fleet model management (core.model_ops) and the simulator's library endpoints: plans (pure),
pull streams, delete, copy, load/unload and /api/ps over real loopback sockets, and the progress
view under a rich capture."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from ollamactl.cli.models.pull_view import LineView, LiveView
from ollamactl.core.fleet import Fleet
from ollamactl.core.http import Timeouts
from ollamactl.core.models import ops as model_ops
from ollamactl.core.models.inventory import reference_digest
from ollamactl.core.registry.instances import Instance
from ollamactl.sim import SimModel, upstream_model
from ollamactl.sim.library import pull_lines

OLD, NEW = "a" * 64, "b" * 64
TIMEOUTS = Timeouts(connect=2.0, first_byte=10.0, read=10.0)


def inst(instance_id: str, kind: str = "both", url: str | None = None) -> Instance:
    return Instance(id=instance_id, name=instance_id, url=url or f"http://127.0.0.1:1/{instance_id}", type=kind)


# ---------------------------------------------------------------------------------------------
# Plans (pure)


def test_plan_marks_a_missing_model_pull_and_an_older_digest_update():
    fleet = [inst("a"), inst("b"), inst("c")]
    held = {"a": {"llama3.2:latest": NEW, "qwen3:4b": NEW},
            "b": {"llama3.2:latest": NEW},
            "c": {"llama3.2:latest": OLD, "qwen3:4b": NEW}}
    steps = model_ops.plan(fleet, held, ["llama3.2:latest", "qwen3:4b"], {})
    todo = {(s.instance_id, s.model, s.action) for s in steps if s.action != "ok"}
    assert todo == {("c", "llama3.2:latest", "update"), ("b", "qwen3:4b", "pull")}
    assert len(steps) == 6
    assert model_ops.drifted(steps) == ["llama3.2:latest", "qwen3:4b"]


def test_plan_sends_each_kind_only_to_instances_that_serve_it_and_skips_unreachable_ones():
    fleet = [inst("chat", "chat"), inst("emb", "embedding"), inst("both"), inst("down")]
    held = {"chat": {}, "emb": {}, "both": {"nomic-embed-text:latest": NEW, "llama3.2:latest": NEW}}
    kinds = {"nomic-embed-text:latest": "embedding", "llama3.2:latest": "chat"}
    steps = model_ops.plan(fleet, held, list(kinds), kinds)
    pulls = {(s.instance_id, s.model) for s in steps if s.action == "pull"}
    assert pulls == {("emb", "nomic-embed-text:latest"), ("chat", "llama3.2:latest")}
    assert not any(s.instance_id == "down" for s in steps)


def test_plan_follows_the_source_digest_and_updates_every_holder_on_a_tie():
    fleet = [inst("a"), inst("b"), inst("c")]
    held = {"a": {"m:latest": OLD}, "b": {"m:latest": NEW}, "c": {"m:latest": NEW}}
    from_a = model_ops.plan(fleet, held, ["m:latest"], {}, source="a")
    assert [s.action for s in from_a] == ["ok", "update", "update"]
    tie = {"a": {"m:latest": OLD}, "b": {"m:latest": NEW}}
    assert [s.action for s in model_ops.plan(fleet[:2], tie, ["m:latest"], {})] == ["update", "update"]
    assert reference_digest([OLD, NEW, NEW, None]) == NEW
    assert reference_digest([OLD, NEW]) is None


def test_kind_comes_from_capabilities_then_family_then_name():
    assert model_ops.model_kind({"capabilities": ["embedding"]}, "x") == "embedding"
    assert model_ops.model_kind({"capabilities": ["completion", "tools"]}, "nomic-embed-text") == "chat"
    assert model_ops.model_kind({"details": {"family": "nomic-bert"}}, "x") == "embedding"
    assert model_ops.model_kind(None, "mxbai-embed-large") == "embedding"
    assert model_ops.model_kind(None, "llama3.2") == "chat"


# ---------------------------------------------------------------------------------------------
# The simulator's library endpoints


def test_sim_pull_reports_layers_and_installs_the_current_build_only_at_the_end(sim):
    instance = sim.add(models=[upstream_model("llama3.2", build="old")])
    with httpx.Client() as client:
        lines = [json.loads(line) for line in
                 client.post(instance.url + "/api/pull", json={"model": "llama3.2"}).text.splitlines()]
        tags = client.get(instance.url + "/api/tags").json()["models"]
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert statuses[-4:-1] == ["verifying sha256 digest", "writing manifest", "removing any unused layers"]
    layer = [line for line in lines if line.get("digest")]
    assert layer[0]["status"] == "pulling " + layer[0]["digest"][len("sha256:"):][:12]
    completed = [line.get("completed", 0) for line in layer if line["digest"] == layer[0]["digest"]]
    assert completed == sorted(completed) and completed[-1] == layer[0]["total"]
    assert [m["digest"] for m in tags if m["name"] == "llama3.2:latest"] == [upstream_model("llama3.2").digest]


def test_sim_pull_failures_unknown_model_and_cut_stream_change_nothing(sim):
    instance = sim.add(models=["llama3.2"])
    with httpx.Client() as client:
        unknown = client.post(instance.url + "/api/pull", json={"model": "no-such-model"})
        assert unknown.status_code == 200
        assert unknown.text.splitlines()[-1] == '{"error":"pull model manifest: file does not exist"}'
        assert client.post(instance.url + "/api/pull", json={"model": "no-such-model", "stream": False}
                           ).status_code == 500
        instance.set_fault("truncated")
        cut = client.post(instance.url + "/api/pull", json={"model": "qwen3:4b"}).text.splitlines()
        assert "success" not in cut[-1]
        instance.set_fault(None)
        assert [m["name"] for m in client.get(instance.url + "/api/tags").json()["models"]] == ["llama3.2:latest"]
        assert client.post(instance.url + "/api/pull", json={"model": "qwen3:4b", "stream": False}
                           ).json() == {"status": "success"}


def test_sim_delete_copy_and_keep_alive_in_ps(sim):
    instance = sim.add(models=["llama3.2", SimModel("nomic-embed-text", embedding=True)], loaded=[])
    with httpx.Client() as client:
        assert client.post(instance.url + "/api/copy", json={"source": "llama3.2", "destination": "mine:v1"}
                           ).status_code == 200
        assert client.post(instance.url + "/api/copy", json={"source": "nope", "destination": "x"}).status_code == 404
        assert client.post(instance.url + "/api/generate", json={"model": "llama3.2", "keep_alive": "1h"}
                           ).json()["done_reason"] == "load"
        assert client.post(instance.url + "/api/embed", json={"model": "nomic-embed-text", "input": [],
                                                              "keep_alive": -1}).status_code == 200
        running = {m["name"]: m["expires_at"] for m in client.get(instance.url + "/api/ps").json()["models"]}
        assert set(running) == {"llama3.2:latest", "nomic-embed-text:latest"}
        assert running["nomic-embed-text:latest"].startswith("2262-")
        assert client.post(instance.url + "/api/generate", json={"model": "llama3.2", "keep_alive": 0}
                           ).json()["done_reason"] == "unload"
        assert [m["name"] for m in client.get(instance.url + "/api/ps").json()["models"]] == ["nomic-embed-text:latest"]
        assert client.request("DELETE", instance.url + "/api/delete", json={"model": "mine:v1"}).status_code == 200
        gone = client.request("DELETE", instance.url + "/api/delete", json={"model": "mine:v1"})
        assert gone.status_code == 404 and "not found" in gone.json()["error"]
        names = [m["name"] for m in client.get(instance.url + "/api/tags").json()["models"]]
    assert names == ["llama3.2:latest", "nomic-embed-text:latest"]


def test_sim_pull_speed_paces_the_lines():
    model = upstream_model("qwen3:4b")
    slow = [line for line in pull_lines(model, 1e9, None) if line.get("total") == max(
        line.get("total", 0) for line in pull_lines(model, 1e9, None))]
    assert len(slow) == 1 + -(-model.size // int(1e9 * 0.1))  # first line, then one per 0.1 s at 1 GB/s
    assert [line["status"] for line in pull_lines(model, None, model)].count("pulling manifest") == 1


# ---------------------------------------------------------------------------------------------
# The core against simulated servers


def registered(sim_instance, name: str) -> Instance:
    return Fleet().add(sim_instance.url, name=name)


def test_pull_learns_the_model_in_the_cache_and_fails_only_the_broken_instance(sim):
    good, cut = sim.add(models=["llama3.2"]), sim.add(models=["llama3.2"], fault="truncated")
    a, b = registered(good, "a"), registered(cut, "b")
    Fleet().probe([a, b])
    seen: list[tuple[str, str]] = []
    outcomes = model_ops.pull(Fleet().store, [(a, "qwen3:4b"), (b, "qwen3:4b")], TIMEOUTS,
                            on_progress=lambda p: seen.append((p.instance.id, p.state)))
    assert [o.ok for o in outcomes] == [True, False]
    assert "without `success`" in outcomes[1].error
    assert (a.id, "done") in seen and (b.id, "failed") in seen
    cached = Fleet().store.read()["health"]
    assert "qwen3:4b" in {m["name"] for m in cached[a.id]["models"]}
    assert "qwen3:4b" not in {m["name"] for m in cached[b.id]["models"]}


def test_load_and_unload_update_the_cached_loaded_list(sim):
    node = registered(sim.add(loaded=[]), "n")
    Fleet().probe([node])
    assert model_ops.warm(Fleet().store, [node], "qwen2.5:7b", "chat", True, TIMEOUTS, 5.0)[0].ok
    assert Fleet().store.read()["health"][node.id]["loaded"] == ["qwen2.5:7b"]
    assert model_ops.warm(Fleet().store, [node], "qwen2.5:7b", "chat", False, TIMEOUTS, 5.0)[0].ok
    assert Fleet().store.read()["health"][node.id]["loaded"] == []
    missing = model_ops.warm(Fleet().store, [node], "gemma3:4b", "chat", True, TIMEOUTS, 5.0)[0]
    assert missing.absent and not missing.ok


# ---------------------------------------------------------------------------------------------
# The progress view


def _rows():
    from ollamactl.core.models.ops import PullProgress

    a, b = inst("gpu1"), inst("gpu2")
    return PullProgress(a, "qwen3:4b"), PullProgress(b, "qwen3:4b")


def test_live_view_shows_status_bytes_and_failures_under_a_rich_capture():
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    first, second = _rows()
    view = LiveView([first, second], console)
    view.start()
    first.state, first.status = "running", "pulling 6a0746a1ec1a"
    first.completed, first.total = 1_200_000_000, 2_400_000_000
    view.update(first)
    second.state, second.error = "failed", "the server reported: \x1b[31mpull model manifest: file does not exist"
    view.update(second)
    view.stop()
    text = out.getvalue()
    assert "gpu1 qwen3:4b" in text and "pulling 6a0746a1ec1a" in text
    assert "1.2/2.4 GB" in text
    assert "failed: the server reported: \\x1b[31mpull model manifest" in text  # escape shown, not obeyed


def test_line_view_prints_status_changes_and_ndjson():
    out = io.StringIO()
    first, _ = _rows()
    view = LineView(False, out)
    first.state, first.status = "running", "pulling manifest"
    view.update(first)
    view.update(first)  # nothing new: no line
    first.status, first.layer_total = "pulling 6a0746a1ec1a", 2_400_000_000
    view.update(first)
    assert out.getvalue().splitlines() == ["gpu1 qwen3:4b: pulling manifest",
                                           "gpu1 qwen3:4b: pulling 6a0746a1ec1a (2.4 GB)"]
    out = io.StringIO()
    LineView(True, out).update(first)
    event = json.loads(out.getvalue())
    assert event["event"] == "progress" and event["id"] == "gpu1" and event["status"] == "pulling 6a0746a1ec1a"


# ---------------------------------------------------------------------------------------------
# Bounded reads against a server that misbehaves on purpose (a raw socket on loopback)


@pytest.fixture
def raw_server():
    """A one-shot HTTP server on 127.0.0.1 that answers every request with `reply` bytes, then
    (when `stall`) keeps the connection open without a word. Yields a function setting both."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    plan = {"reply": b"", "stall": False}
    done = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(plan["reply"])
                if plan["stall"]:
                    done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def configure(reply: bytes, stall: bool = False) -> Instance:
        plan.update(reply=reply, stall=stall)
        return inst("raw", url=f"http://127.0.0.1:{listener.getsockname()[1]}")

    yield configure
    done.set()
    thread.join(5)
    listener.close()


def _chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + f"{len(body):x}\r\n".encode() + body + b"\r\n"


def test_a_progress_line_over_the_cap_fails_that_pull(raw_server):
    instance = raw_server(_chunked(b'{"status":"' + b"x" * (model_ops.LINE_LIMIT + 10)), stall=True)
    [outcome] = model_ops.pull(Fleet().store, [(instance, "m")], TIMEOUTS)
    assert not outcome.ok and "longer than 64 KiB" in outcome.error


def test_a_pull_that_goes_quiet_fails_after_the_between_lines_deadline(raw_server):
    instance = raw_server(_chunked(b'{"status":"pulling manifest"}\n'), stall=True)
    [outcome] = model_ops.pull(Fleet().store, [(instance, "m")], TIMEOUTS, between=0.3)
    assert not outcome.ok and outcome.error == "no progress line for 0.3 s"
