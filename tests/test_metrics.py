"""Fleet metrics: what run, embed and exec served, counted exactly per instance and outcome by every
process, shown as Prometheus text (parsed by prometheus_client), JSON, over HTTP, and in `top`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest
from cli_helpers import ok, one_error_line, run, written_to_a_terminal
from fleet_setup import register
from prometheus_client.parser import text_string_to_metric_families

from ollamactl.core.fleet import Fleet
from ollamactl.core.metrics import counters as metrics
from ollamactl.core.metrics.counters import BUCKETS, MAX_MODELS, MINUTES, Sample
from ollamactl.core.routing.router import Request


def families(text: str) -> dict[str, list]:
    """{family name: its samples} as Prometheus's own parser reads the text."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples, name: str, **labels: str) -> float:
    [found] = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return found


def pin_the_health_cache() -> None:
    """Keep the probes' verdicts for an hour: the runs below meet the faults, not a refresh."""
    config = Fleet().locations.registry
    with config.open("a") as handle:
        handle.write("\n[settings]\nhealth_ttl = 3600\nunhealthy_ttl = 3600\n")


@pytest.fixture
def burst(sim):
    """Six runs over two instances, the second answering HTTP 500 from the third run on (each of its
    failures fails over to the first); then three embedding batches and an exec on the first, and
    an exec whose command fails on the second."""
    good, flaky = sim.add(token_rate=200.0), sim.add(token_rate=50.0)
    register(good, flaky)
    pin_the_health_cache()
    for number in range(6):
        if number == 2:
            flaky.set_fault("http500")
        ok("run", "llama3.2", "hi")
    ok("embed", "nomic-embed-text", "one", "two", "three", "--batch-size", "1", "--instance", "sim1")
    ok("exec", "--instance", "sim1", "--", "true")
    assert run("exec", "--instance", "sim2", "--", "sh", "-c", "exit 3").exit_code == 3
    return good, flaky


def test_a_burst_of_runs_is_counted_exactly_per_instance_and_outcome(burst):
    text = ok("metrics").stdout
    expected = {  # round-robin: runs 1, 3, 5 on sim1; 2 on sim2; 4 and 6 failed on sim2 and went to sim1
        ("sim1", "ok"): 5 + 3 + 1, ("sim2", "ok"): 1, ("sim2", "http_5xx"): 2, ("sim2", "command"): 1}
    requests = families(text)["ollamactl_requests"]
    for name in ("sim1", "sim2"):
        assert value(requests, "ollamactl_requests_total", instance=name, outcome="ok") == expected.get((name, "ok"), 0)
        for kind in metrics.KINDS:
            assert value(requests, "ollamactl_requests_total", instance=name, outcome="error", kind=kind) \
                == expected.get((name, kind), 0), (name, kind)
    assert value(families(text)["ollamactl_embed_inputs"], "ollamactl_embed_inputs_total", instance="sim1") == 3
    assert {row.name: row.requests for row in Fleet().metrics()} == {
        "sim1": {"ok": 9}, "sim2": {"ok": 1, "http_5xx": 2, "command": 1}}


def test_speed_is_ollamas_own_eval_count_over_eval_duration(burst):
    speeds = {row.name: {s.model: s for s in row.models} for row in Fleet().metrics()}
    fast, slow = speeds["sim1"]["llama3.2:latest"], speeds["sim2"]["llama3.2:latest"]
    assert fast.tokens_per_second == pytest.approx(200.0, rel=0.01)
    assert slow.tokens_per_second == pytest.approx(50.0, rel=0.01)
    parsed = families(ok("metrics").stdout)
    assert value(parsed["ollamactl_tokens_per_second"], "ollamactl_tokens_per_second",
                 instance="sim1", model="llama3.2:latest") == pytest.approx(200.0, rel=0.01)


def test_the_exposition_is_prometheus_text_with_help_type_and_a_consistent_histogram(burst):
    text = ok("metrics").stdout
    for name in ("ollamactl_up", "ollamactl_requests_total", "ollamactl_inflight", "ollamactl_max_inflight",
                 "ollamactl_probe_latency_seconds", "ollamactl_first_token_seconds", "ollamactl_tokens_per_second"):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text
    parsed = families(text)
    samples = parsed["ollamactl_first_token_seconds"]
    buckets = [s for s in samples if s.name.endswith("_bucket") and s.labels["instance"] == "sim1"]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
    assert counts[-1] == value(samples, "ollamactl_first_token_seconds_count", instance="sim1") > 0
    assert value(parsed["ollamactl_up"], "ollamactl_up", instance="sim1") == 1


def test_leases_held_right_now_are_shown_against_capacity(sim):
    register(sim.add(), max_inflight=2)
    fleet = Fleet()
    with fleet.lease(Request("chat", "llama3.2"))[0]:
        parsed = families(ok("metrics").stdout)
        assert value(parsed["ollamactl_inflight"], "ollamactl_inflight", instance="sim1") == 1
    assert value(parsed["ollamactl_max_inflight"], "ollamactl_max_inflight", instance="sim1") == 2
    assert value(families(ok("metrics").stdout)["ollamactl_inflight"], "ollamactl_inflight", instance="sim1") == 0


def test_json_holds_the_same_counts_as_one_object(burst):
    data = json.loads(ok("metrics", "--json").stdout)
    rows = {row["name"]: row for row in data["instances"]}
    for row in Fleet().metrics():
        assert rows[row.name]["requests"]["ok"] == row.requests["ok"]
        assert rows[row.name]["requests"]["error"]["command"] == row.requests.get("command", 0)
    assert rows["sim1"]["embed_inputs"] == 3


def test_reset_asks_off_a_terminal_and_clears_with_yes(burst):
    refused = run("metrics", "--reset")
    assert refused.exit_code == 2 and "--yes" in one_error_line(refused)
    assert Fleet().metrics()[0].total > 0
    ok("metrics", "--reset", "--yes")
    assert [row.total for row in Fleet().metrics()] == [0, 0]
    assert value(families(ok("metrics").stdout)["ollamactl_requests"], "ollamactl_requests_total",
                 instance="sim1", outcome="ok") == 0


_WRITER = """
import sys
from ollamactl.core.health.breaker import Feedback
from ollamactl.core.fleet import Fleet
from ollamactl.core.metrics.counters import Sample
feedback = Feedback(Fleet().store)
for n in range(int(sys.argv[1])):
    feedback.count("gpu1-11434", Sample(outcome="ok" if n % 2 else "timeout", inputs=1))
"""


@pytest.mark.parametrize("store", ["file", "redis"])
def test_eight_parallel_writers_lose_no_increment(store, request):
    if store == "redis":
        request.getfixturevalue("redis_store")
    Fleet().add("gpu1")
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, "20"], env=os.environ.copy()) for _ in range(8)]
    assert [writer.wait(timeout=120) for writer in writers] == [0] * 8
    [row] = Fleet().metrics()
    assert row.requests == {"ok": 80, "timeout": 80} and row.embed_inputs == 160


def test_serve_answers_a_scrape_on_loopback(burst):
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "metrics", "--serve", "127.0.0.1:0"],
                               stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = process.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/metrics", line).group(0)
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            parsed = families(answer.read().decode())
        assert value(parsed["ollamactl_embed_inputs"], "ollamactl_embed_inputs_total", instance="sim1") == 3
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=30)
        assert missing.value.code == 404
    finally:
        process.terminate()
        process.wait(timeout=60)
    bad = run("metrics", "--serve", "nowhere:x")
    assert bad.exit_code == 2 and "'nowhere:x'" in one_error_line(bad)


def test_counters_stay_bounded_whatever_the_traffic():
    entry, now = None, 1_000_000.0
    for n in range(MAX_MODELS + 10):
        entry = metrics.apply(entry, Sample(model=f"m{n}", first_token_s=0.2, tokens=10, eval_s=0.1), now + n)
    assert len(entry["models"]) == MAX_MODELS and "m0" not in entry["models"]  # the least recently used went
    assert len(entry["first_token"]["buckets"]) == len(BUCKETS)
    later = metrics.apply(entry, Sample(outcome="timeout"), now + 3600)  # an hour on: the ring rolled
    ok_counts, errors = metrics.per_minute(later, now + 3600)
    assert len(ok_counts) == MINUTES and sum(ok_counts) == 0 and errors[-1] == 1
    assert metrics.entry_ok(later)


def test_requests_per_minute_roll_with_the_clock():
    start = 6_000_000.0  # a minute boundary
    entry = metrics.apply(None, Sample(), start)
    entry = metrics.apply(entry, Sample(requests=2), start + 30)
    entry = metrics.apply(entry, Sample(outcome="connect"), start + 61)
    ok_counts, errors = metrics.per_minute(entry, start + 125)
    assert ok_counts[-3:] == [3, 0, 0] and errors[-3:] == [0, 1, 0]


def test_a_damaged_metrics_entry_is_dropped_not_believed(isolated_env):
    Fleet().add("gpu1")
    Fleet().store.update(lambda data: data["metrics"].update({"gpu1-11434": {"requests": {"ok": -5}}}))
    [row] = Fleet().metrics()
    assert row.requests == {}


def test_top_once_prints_one_plain_frame_off_a_terminal(sim):
    up, down = sim.add(), sim.add(fault="http500")
    register(up, down, max_inflight=3)
    frame = ok("top", "--once").stdout.splitlines()
    assert frame[0].startswith("fleet: 2 instances, 1 up · 0/6 in flight")
    assert frame[1].split()[:3] == ["NAME", "STATUS", "FLIGHT"]
    rows = {line.split()[0]: line.split() for line in frame[2:]}
    assert rows["sim1"][1:3] == ["up", "0/3"] and rows["sim2"][1] == "DOWN"
    Fleet().add("http://127.0.0.1:1", name="late")  # the next frame follows the registry
    assert any(line.startswith("late ") for line in ok("top", "--once").stdout.splitlines())


def test_top_fits_60_columns_by_dropping_columns_never_the_name(burst):
    from rich.console import Console

    from ollamactl.cli import output
    from ollamactl.cli.health.top_cmd import Snapshot, render

    console = Console(width=60, record=True, color_system=None)
    console.print(output.renderable(render(Fleet().metrics(), Snapshot({}), 60), 60))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert any(line.startswith("sim1 ") for line in lines) and any(line.startswith("sim2 ") for line in lines)
    wide = Console(width=160, record=True, color_system=None)
    wide.print(output.renderable(render(Fleet().metrics(), Snapshot({}), 160), 160))
    assert "TREND" in wide.export_text() and "TREND" not in "\n".join(lines)


def test_each_failure_is_counted_under_the_kind_a_user_would_name_it():
    from ollamactl.core import http
    from ollamactl.core.health import breaker

    assert breaker.error_kind(http.ConnectFailed("connection refused")) == "connect"
    assert breaker.error_kind(http.Timeout("timed out")) == "timeout"
    assert breaker.error_kind(http.Unresponsive("stopped answering")) == "timeout"
    assert breaker.error_kind(http.ServerBusy("busy", status=503)) == "http_5xx"
    assert breaker.error_kind(http.ModelNotFound("no such model", status=404)) == "http_4xx"
    assert breaker.error_kind(http.ServerError("truncated stream"), midstream=True) == "midstream"


def test_a_hostile_model_name_is_exact_in_a_pipe_and_shown_not_obeyed_on_a_terminal(isolated_env):
    name = "m\x1b]0;OWNED\x07\x1b[2J[red]x\"y\\z"
    instance = Fleet().add("http://127.0.0.1:1", name="a[/b]")
    Fleet().store.update(lambda data: data["metrics"].update(
        {instance.id: metrics.apply(None, Sample(model=name, tokens=10, eval_s=0.5), 1_000_000.0)}))
    piped = subprocess.run([sys.executable, "-m", "ollamactl", "metrics"], capture_output=True, text=True,
                           timeout=60)
    [speed] = families(piped.stdout)["ollamactl_tokens_per_second"]
    assert speed.labels == {"instance": "a[/b]", "model": name + ":latest"} and speed.value == 20.0
    shown = written_to_a_terminal("metrics")
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert b'model="m\\x1b]0;OWNED\\a\\x1b[2J[red]x\\"y\\\\z:latest"' in shown


def test_top_off_a_terminal_prints_a_plain_frame_every_interval_until_ctrl_c(sim):
    """Before: `top | grep` and `top > file` printed nothing and never ended (rich's live view
    draws only on a terminal)."""
    import signal
    import threading

    register(sim.add())
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "top", "--interval", "0.5"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    guard = threading.Timer(120, process.kill)  # a hang guard, not a bound: the old top never printed
    guard.start()
    headers = 0
    for line in process.stdout:  # each frame arrives on its own
        headers += line.split()[:2] == ["NAME", "STATUS"]
        if headers == 2:
            break
    guard.cancel()
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=60)
    assert headers == 2 and process.returncode == 130
    assert err == "ollamactl: error: interrupted\n"
