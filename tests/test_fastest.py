"""The `fastest` strategy and `ollamactl bench`: routing on the speed Ollama reports, learned from
ordinary runs and benches, spreading under load, exploring instances never measured."""

from __future__ import annotations

import json

import pytest
from cli_helpers import ok, one_error_line, run
from fleet_setup import register

from ollamactl.core.fleet import Fleet
from ollamactl.core.metrics import counters as metrics
from ollamactl.core.metrics.counters import Sample
from ollamactl.core.registry.instances import Instance
from ollamactl.core.routing import selection

A, B, C = (Instance(id=name, name=name, url=f"http://{name}:11434") for name in ("a", "b", "c"))
NEVER = b"\xff\xff\xff\xff" * 8  # draws that never explore


def measured(**speeds: float) -> dict:
    """A metrics section where each named instance generated llama3.2 at the given tokens/s."""
    section = {}
    for name, tps in speeds.items():
        section[name] = metrics.apply(None, Sample(model="llama3.2", first_token_s=0.1, tokens=int(tps),
                                                   eval_s=1.0), 1_000_000.0)
    return section


def test_the_fastest_measured_instance_is_picked():
    picks = selection.fastest([A, B, C], "llama3.2:latest", measured(a=25, b=400, c=100), {}, {}, {}, 1, NEVER)
    assert picks == [B]


def test_a_busy_fast_instance_shares_its_speed_so_load_spreads():
    section = measured(a=100, b=400)  # alone: a 0.1 + 256/100 = 2.66 s, b 0.1 + 256/400 = 0.74 s
    assert selection.fastest([A, B], "llama3.2", section, {}, {}, {"b": 2}, 1, NEVER) == [B]  # 3 x 0.74 = 2.22 s
    assert selection.fastest([A, B], "llama3.2", section, {}, {}, {"b": 3}, 1, NEVER) == [A]  # 4 x 0.74 = 2.96 s
    burst = selection.fastest([A, B], "llama3.2", section, {}, {}, {}, 6, NEVER)
    assert burst == [B, B, B, A, B, B]  # each pick counts as one more lease on its instance


def test_an_instance_never_measured_is_explored_now_and_then():
    section = measured(a=400)
    explore = (int(0.05 * 2**32)).to_bytes(4, "big")  # a draw inside the 10 % share
    assert selection.fastest([A, B], "llama3.2", section, {}, {}, {}, 1, explore) == [B]
    stay = (int(0.5 * 2**32)).to_bytes(4, "big")
    assert selection.fastest([A, B], "llama3.2", section, {}, {}, {}, 1, stay) == [A]
    assert selection.EXPLORE_SHARE == 0.1


def test_with_nothing_measured_it_is_least_latency():
    health = {"a": {"latency_ms": 9.0}, "b": {"latency_ms": 2.0}, "c": {"latency_ms": 5.0}}
    assert selection.fastest([A, B, C], "llama3.2", {}, health, {}, {}, 1, NEVER) == [B]


@pytest.fixture
def speeds(sim):
    """Three instances at 400, 100 and 25 tokens/s, registered as sim1..sim3."""
    fleet = [sim.add(token_rate=400.0), sim.add(token_rate=100.0), sim.add(token_rate=25.0)]
    register(*fleet)
    return fleet


def test_it_learns_from_ordinary_runs_under_any_strategy(speeds):
    before = ok("pick", "-s", "fastest", "-m", "llama3.2").stdout.strip()
    assert before == Fleet().pick(strategy="least-latency", model="llama3.2")[0].url  # nothing measured yet
    for _ in range(3):  # round-robin: each instance once
        ok("run", "llama3.2", "hi", "-o", "num_predict=8")
    assert ok("pick", "-s", "fastest", "-m", "llama3.2").stdout.strip() == speeds[0].url
    assert Fleet().pick(strategy="fastest", model="llama3.2:latest")[0].url == speeds[0].url
    explained = ok("pick", "-s", "fastest", "-m", "llama3.2", "--explain").stderr
    assert "chosen" in explained and "400 tok/s" in explained and "25 tok/s" in explained


def test_bench_ranks_by_measured_speed_and_stores_it(speeds):
    result = ok("bench", "--tokens", "8", "--json")
    ranked = json.loads(result.stdout)
    assert [row["url"] for row in ranked] == [s.url for s in speeds]
    assert [round(row["tokens_per_second"]) for row in ranked] == [400, 100, 25]
    assert all(row["model"] == "llama3.2:latest" and row["first_token_s"] > 0 and not row["cold"] for row in ranked)
    assert ok("pick", "-s", "fastest", "-m", "llama3.2").stdout.strip() == speeds[0].url  # stored like runs
    table = ok("bench", "--tokens", "8").stdout.splitlines()
    assert [line.split()[0] for line in table[1:]] == ["sim1", "sim2", "sim3"]
    assert table[1].count("█") > table[2].count("█") > 0


def test_bench_set_weights_shows_the_change_and_asks(speeds):
    refused = run("bench", "--tokens", "8", "--set-weights")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert "sim1: weight 1 -> 16" in refused.stderr
    assert [i.weight for i in Fleet().instances()] == [1, 1, 1]
    ok("bench", "--tokens", "8", "--set-weights", "--yes")
    assert [i.weight for i in Fleet().instances()] == [16, 4, 1]


def test_bench_of_a_model_nobody_holds_exits_3(speeds):
    result = run("bench", "-m", "mistral:7b")
    assert result.exit_code == 3 and "mistral:7b" in one_error_line(result)


def test_simulate_refuses_a_token_rate_that_is_not_a_speed():
    result = run("simulate", "--token-rate", "1=fast")
    assert result.exit_code == 2 and "--token-rate 1=fast" in one_error_line(result)


@pytest.mark.parametrize("flag", ["--tokens", "--repeat"])
def test_bench_names_a_bad_count_by_its_flag(flag):
    result = run("bench", flag, "0")
    assert result.exit_code == 2 and one_error_line(result).startswith(f"ollamactl: error: {flag} must be")


def test_bench_says_why_an_instance_could_not_be_measured(speeds):
    """Before: its row said only `the attempt failed`, not what the server answered."""
    speeds[2].config.fault = "busy503"
    result = run("bench", "--tokens", "8", "--json")
    assert result.exit_code == 1
    failed = [row for row in json.loads(result.stdout) if row["url"] == speeds[2].url]
    assert failed[0]["tokens_per_second"] is None and "503" in failed[0]["error"], failed


def test_bench_set_weights_with_nothing_measured_changes_nothing_and_says_so(speeds):
    for instance in speeds:
        instance.set_fault("http500")  # healthy in the cache, every generate fails
    result = run("bench", "--tokens", "8", "--set-weights", "--yes")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "already match" not in result.stderr  # nothing was measured to match
    assert "no instance was measured: the weights stay as they are" in result.stderr, result.stderr
    assert [i.weight for i in Fleet().instances()] == [1, 1, 1]
