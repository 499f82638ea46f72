"""Liveness while an answer is awaited (issue 22 item 3): a server that hangs after a good health
check is failed over once it stops answering `/api/version`, not after the 600 s first-byte
timeout; a cold model load on a server that still answers keeps its whole first-byte timeout.

The checks are made frequent and short here (`[settings] liveness_interval` and `timeout`, or
`Timeouts` for the library), and what is asserted is what happened: which instance answered, which
checks the servers saw, and the words naming the hung one; never a wall-clock bound.
"""

from __future__ import annotations

import json
import threading

from cli_helpers import run
from fleet_setup import register
from lease_helpers import wait_until

from ollamactl.core.fleet import Fleet
from ollamactl.core.http import Timeouts
from ollamactl.core.proxy.generate import GenerateRequest

QUICK = Timeouts(first_byte=120.0, alive_every=0.1, alive_within=1.0)


def settings(**values) -> None:
    with Fleet().locations.registry.open("a") as handle:
        handle.write("\n[settings]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()))


def paths(sim_instance, path):
    return [r for r in sim_instance.requests if r.path == path]


def stream(model="llama3.2", timeouts=QUICK):
    lines: list[str] = []
    result = Fleet().stream(GenerateRequest(model, "hi", timeouts=timeouts), lambda raw, obj: True, log=lines.append)
    return result, lines


def test_run_fails_over_from_a_server_that_hung_after_its_health_check(sim):
    hung, good = sim.add(), sim.add()
    ids = register(hung, good)  # both checked healthy; sim1 is the first pick
    settings(liveness_interval=0.2, timeout=1.0)
    hung.set_fault("hang")
    said = []
    for _ in range(3):  # every run is answered by the other instance
        result = run("run", "llama3.2", "hi", "--verbose", "--first-byte-timeout", "30")
        assert result.exit_code == 0, result.stderr
        assert f"served by {ids[1]}" in result.stderr
        said.append(result.stderr)
    assert f"{ids[0]} ({hung.url}) failed: stopped answering" in said[0]  # the first pick met the hung one
    assert len(paths(good, "/api/generate")) == 3
    # ... and cached it as the failed health check it is: the runs after it never tried the hung one.
    entry = Fleet().store.read()["health"][ids[0]]
    assert entry["healthy"] is False and entry["error"].startswith("stopped answering while its answer was awaited")
    assert len(paths(hung, "/api/generate")) == 1 and f"trying {ids[0]}" not in "".join(said)


def test_the_verbose_line_names_the_hung_server_and_what_it_did_not_answer(sim):
    hung, good = sim.add(), sim.add()
    ids = register(hung, good)
    settings(liveness_interval=0.2, timeout=1.0)
    hung.set_fault("hang")
    result = run("run", "llama3.2", "hi", "--verbose", "--first-byte-timeout", "30")
    assert result.exit_code == 0, result.stderr
    assert (f"{ids[0]} ({hung.url}) failed: stopped answering while its answer was awaited (no answer to"
            f" /api/version within 1.0 s); trying {ids[1]}") in result.stderr
    assert len(paths(hung, "/api/version")) >= 2  # the health check's, then the liveness check's
    assert "first-byte timeout" not in result.stderr


def test_the_library_fails_over_when_a_loading_server_stops_answering(sim):
    loading, good = sim.add(loaded=[], load_time=60.0), sim.add()
    ids = register(loading, good)
    before = len(paths(loading, "/api/version"))
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(zip(("result", "log"), stream(), strict=True)))
    worker.start()
    # It loads the model, answering every liveness check meanwhile ...
    wait_until(lambda: len(paths(loading, "/api/version")) >= before + 2, timeout=30)
    assert not paths(good, "/api/generate")
    loading.set_fault("hang")  # ... then hangs: the next check goes unanswered
    worker.join(60)
    assert outcome["result"].instance.id == ids[1]
    assert any(line.startswith(f"{ids[0]} ({loading.url}) failed: stopped answering") for line in outcome["log"])


def test_a_cold_load_on_a_responsive_server_is_waited_for(sim):
    cold, other = sim.add(loaded=[], load_time=1.5), sim.add()
    ids = register(cold, other)
    before = len(paths(cold, "/api/version"))
    result, log = stream()
    assert result.instance.id == ids[0] and result.final["done"] is True
    assert len(paths(cold, "/api/version")) >= before + 3  # asked several times during the load, answered each
    assert not paths(other, "/api/generate") and not any("failed" in line for line in log)


def test_embed_moves_a_batch_off_a_server_that_stops_answering(sim):
    hung, cold = sim.add(), sim.add(loaded=[], load_time=3.0)  # the cold one is busy loading: no hedging
    ids = register(hung, cold)
    hung.set_fault("hang")
    log: list[str] = []
    vectors = Fleet().embed("nomic-embed-text", ["one", "two"], batch_size=1, per_instance=1, log=log.append,
                            timeouts=Timeouts(first_byte=120.0, alive_every=0.1, alive_within=0.3))
    assert len(vectors) == 2 and all(vectors)
    assert any(f"failed on {ids[0]} ({hung.url}): stopped answering" in line for line in log), log
    assert not any(ids[1] in line and "failed" in line for line in log)  # the cold load was waited for


def test_load_and_pull_give_up_on_a_hung_server_once_it_stops_answering(sim):
    hung = sim.add()
    [hung_id] = register(hung)
    settings(liveness_interval=0.2, timeout=1.0, first_byte_timeout=30.0)
    hung.set_fault("hang")
    for command in (("load", "llama3.2", hung_id), ("unload", "llama3.2", hung_id),
                    ("pull", "qwen3:4b", hung_id)):
        result = run(*command, "--json")
        assert result.exit_code == 1, (command, result.stdout, result.stderr)
        [outcome] = json.loads(result.stdout.splitlines()[-1])["outcomes"]
        assert outcome["error"].startswith("stopped answering while its answer was awaited"), (command, outcome)


def test_timeout_bounds_load_unload_and_pull(sim):
    hung = sim.add()
    [hung_id] = register(hung)
    settings(liveness_interval=3600, timeout=1.0)  # no liveness check comes in time: the flag alone bounds them
    hung.set_fault("hang")
    words = {"load": "no complete answer within 0.5 s", "unload": "no complete answer within 0.5 s",
             "pull": "no answer within the first-byte timeout (0.5 s)"}
    for command, model in (("load", "llama3.2"), ("unload", "llama3.2"), ("pull", "qwen3:4b")):
        result = run(command, model, hung_id, "--timeout", "0.5", "--json")
        assert result.exit_code == 1, (command, result.stdout, result.stderr)
        [outcome] = json.loads(result.stdout.splitlines()[-1])["outcomes"]
        assert outcome["error"] == words[command], (command, outcome)
    refused = run("load", "llama3.2", hung_id, "--timeout", "0")
    assert refused.exit_code == 2 and "--timeout" in refused.stderr


def test_embed_on_the_command_line_says_which_server_stopped_answering(sim):
    hung, cold = sim.add(), sim.add(loaded=[], load_time=3.0)
    ids = register(hung, cold)
    settings(liveness_interval=0.2, timeout=0.5)
    hung.set_fault("hang")
    result = run("embed", "nomic-embed-text", "one", "two", "--batch-size", "1", "--per-instance", "1",
                    "--ndjson", "--verbose", "--first-byte-timeout", "30")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["index"] for line in result.stdout.splitlines()] == [0, 1]
    assert f"failed on {ids[0]} ({hung.url}): stopped answering while its answer was awaited" in result.stderr
