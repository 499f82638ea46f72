"""ps / pull / rm / sync / load / unload / models --diff through the real CLI, against simulated servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from cli_helpers import ok, one_error_line, run

from ollamactl.core.fleet import Fleet
from ollamactl.sim import upstream_model


def fleet(sim, *model_sets, **fields):
    """Simulated instances with these model sets, registered as n1, n2, ...; returns (sims, ids)."""
    sims = [sim.add(models=list(models), loaded=[], **fields) for models in model_sets]
    ids = [Fleet().add(s.url, name=f"n{number}").id for number, s in enumerate(sims, 1)]
    return sims, ids


def library_requests(instance) -> list[str]:
    return [r.path for r in instance.requests if r.path in ("/api/pull", "/api/delete")]


def drifted_fleet(sim):
    """The issue's fleet: n2 lacks qwen3:4b, n3 holds an older build of llama3.2."""
    embed = upstream_model("nomic-embed-text")
    return fleet(sim, ["llama3.2", "qwen3:4b", embed], ["llama3.2", embed],
                 [upstream_model("llama3.2", build="old"), "qwen3:4b", embed])


def test_sync_dry_run_plans_exactly_the_missing_model_and_the_digest_mismatch(sim):
    sims, ids = drifted_fleet(sim)
    result = ok("sync", "--dry-run", "--json")
    steps = json.loads(result.stdout)["steps"]
    todo = {(s["id"], s["model"], s["action"]) for s in steps if s["action"] != "ok"}
    assert todo == {(ids[1], "qwen3:4b", "pull"), (ids[2], "llama3.2:latest", "update")}
    assert "1 pull of absent models, 1 update" in result.stderr
    table = ok("sync", "--dry-run").stdout
    assert "update" in table and "pull" in table and table.count("ok") == 7
    assert not any(library_requests(s) for s in sims)  # a dry run pulls nothing


def test_sync_yes_aligns_the_fleet_then_models_diff_is_empty_and_ps_shows_a_load(sim):
    sims, ids = drifted_fleet(sim)
    diff = json.loads(ok("models", "--diff", "--json").stdout)
    assert {d["model"] for d in diff} == {"llama3.2:latest", "qwen3:4b"}
    result = ok("sync", "--yes")
    assert [library_requests(s) for s in sims] == [[], ["/api/pull"], ["/api/pull"]]
    assert "pulled" in result.stdout
    assert json.loads(ok("models", "--diff", "--json").stdout) == []
    assert "every model is on every" in ok("models", "--diff").stderr
    ok("load", "qwen3:4b", ids[0], "--keep-alive", "1h")
    listing = json.loads(ok("ps", "--json").stdout)
    loaded = {entry["id"]: [m["name"] for m in entry["models"]] for entry in listing}
    assert loaded == {ids[0]: ["qwen3:4b"], ids[1]: [], ids[2]: []}
    assert "59m" in ok("ps", ids[0]).stdout  # time until the keep-alive timer unloads it


def test_sync_from_one_instance_takes_its_models_and_digests(sim):
    _, ids = drifted_fleet(sim)
    steps = json.loads(ok("sync", "--from", "n3", "--dry-run", "--json").stdout)["steps"]
    todo = {(s["id"], s["model"], s["action"]) for s in steps if s["action"] != "ok"}
    assert todo == {(ids[0], "llama3.2:latest", "update"), (ids[1], "llama3.2:latest", "update"),
                    (ids[1], "qwen3:4b", "pull")}
    assert run("sync", "gemma3:4b", "--from", "n3", "--dry-run").exit_code == 2  # not on n3


def test_sync_off_a_terminal_needs_yes(sim):
    sims, _ = drifted_fleet(sim)
    result = run("sync")
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert not any(library_requests(s) for s in sims)


def test_parallel_pulls_to_four_instances_with_one_failing(sim):
    sims, ids = fleet(sim, ["llama3.2"], ["llama3.2"], ["llama3.2"], ["llama3.2"])
    sims[2].set_fault("truncated")  # the stream is cut mid-download
    result = run("pull", "qwen3:4b")
    assert result.exit_code == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("n")}
    assert all("pulled" in lines[name] for name in ("n1", "n2", "n4"))  # instances shown by name
    assert "failed: the stream ended without `success`" in lines["n3"]
    assert ids[2] in one_error_line(result)
    picks = ok("pick", "-m", "qwen3:4b", "--strict", "-n", "6").stdout.split()  # the cache learned at once
    assert set(picks) == {sims[i].url for i in (0, 1, 3)}


def test_pull_unknown_model_fails_with_the_servers_words_and_json_events(sim):
    fleet(sim, ["llama3.2"], ["llama3.2"])
    result = run("pull", "no-such-model", "--json")
    assert result.exit_code == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "summary"
    assert all(o["error"] == "the server reported: pull model manifest: file does not exist"
               for o in events[-1]["outcomes"])
    assert any(e.get("status") == "pulling manifest" for e in events)


def test_pull_skips_instances_that_are_current_and_embedding_models_skip_chat_instances(sim):
    sims, ids = fleet(sim, ["llama3.2"], ["llama3.2"])
    Fleet().update(ids[1], type="chat")
    assert "already on every" in ok("pull", "llama3.2").stderr
    ok("pull", "nomic-embed-text")
    assert [library_requests(s) for s in sims] == [["/api/pull"], []]
    ok("pull", "llama3.2", "--all")
    assert [len(library_requests(s)) for s in sims] == [2, 1]


def test_rm_without_yes_off_a_terminal_changes_nothing(sim):
    sims, ids = fleet(sim, ["llama3.2", "qwen3:4b"], ["llama3.2", "qwen3:4b"])
    result = run("rm", "qwen3:4b", ids[0])
    assert result.exit_code == 2 and "pass --yes" in one_error_line(result)
    assert not any(library_requests(s) for s in sims)
    assert all(any(m.name == "qwen3:4b" for m in s.config.models) for s in sims)


def test_rm_protects_the_last_copy_unless_forced_and_reports_absent_instances(sim):
    sims, ids = fleet(sim, ["llama3.2", "qwen3:4b"], ["llama3.2"])
    refused = run("rm", "qwen3:4b", "--all", "--yes")
    assert refused.exit_code == 2
    assert f"{ids[0]} holds the last copy of qwen3:4b" in one_error_line(refused)
    assert not any(library_requests(s) for s in sims)
    result = ok("rm", "qwen3:4b", "--all", "--yes", "--force")
    assert "removed" in result.stdout and "not on this instance" in result.stdout
    assert not any(m.name == "qwen3:4b" for m in sims[0].config.models)
    cached = Fleet().store.read()["health"][ids[0]]
    assert "qwen3:4b" not in {m["name"] for m in cached["models"]}
    ok("rm", "llama3.2", ids[1], "--yes")  # another copy stays on n1: no --force needed
    assert [m.name for m in sims[1].config.models] == []


def test_rm_from_a_named_disabled_instance_when_every_instance_is_disabled(sim):
    """A named instance is worked on even when disabled (as pull, ps, load do); rm refused it with
    `all 1 registered instances are disabled` once no instance was enabled."""
    sims, ids = fleet(sim, ["llama3.2", "qwen3:4b"])
    Fleet().disable(ids[0])
    result = ok("rm", "qwen3:4b", ids[0], "--yes", "--force")
    assert "removed" in result.stdout
    assert [m.name for m in sims[0].config.models] == ["llama3.2:latest"]


def test_load_and_unload_move_the_warm_strategy(sim):
    sims, ids = fleet(sim, ["llama3.2"], ["llama3.2"])
    ok("refresh")
    ok("load", "llama3.2", ids[1])
    assert ok("pick", "-m", "llama3.2", "-s", "warm", "-n", "3").stdout.split() == [sims[1].url] * 3
    result = ok("unload", "llama3.2")
    assert "n2" in result.stdout and "n1" not in result.stdout  # only where it was loaded
    assert json.loads(ok("ps", "--json").stdout)[1]["models"] == []
    assert run("load", "gemma3:4b").exit_code == 3
    refused = run("load", "llama3.2", "--keep-alive", "soon")
    assert refused.exit_code == 2 and "'soon' is not a duration" in one_error_line(refused)
    ok("load", "llama3.2", "--keep-alive", ".5h")  # Go's duration forms, the same rule as run's --keep-alive


def test_ps_lists_unreachable_instances_with_their_error(sim):
    good = sim.add(loaded=["llama3.2"])
    Fleet().add(good.url, name="up")
    down = sim.add(fault="refuse")
    Fleet().add(down.url, name="down")
    result = run("ps")
    assert result.exit_code == 1
    assert "llama3.2:latest" in result.stdout and "100% GPU" in result.stdout
    assert "unreachable: connection refused" in result.stdout


def test_ctrl_c_during_pulls_exits_130_without_a_traceback(sim):
    sims, _ = fleet(sim, ["llama3.2"], ["llama3.2"], pull_speed=50e6)  # ~50 s per download: Ctrl-C comes first
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "pull", "qwen3:4b"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = process.stdout.readline()
        assert "pulling" in first, first
        deadline = time.monotonic() + 10
        while sum(s.max_in_flight for s in sims) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert all(not any(m.name == "qwen3:4b" for m in s.config.models) for s in sims)
