"""Model commands do not wait on an instance the health cache knows is down (issue 22 item 4): one
hung server added ~5 s (the probe timeout) to `ps`, `pull`, `sync`, `load`, `unload`, `rm` and
`run` of a missing model even when the cache already marked it unhealthy. Now they leave it out
without contacting it and say so in one line; naming it on the command line asks it anyway.

Boundedness is shown by what the hung server saw (no request at all), not by a clock.
"""

from __future__ import annotations

import json

from cli_helpers import run
from fleet_setup import register

from ollamactl.core.fleet import Fleet


def known_down_fleet(sim):
    """A good instance and one that hung after its health check, then `refresh` saw it hang: the
    cache knows it is down (and stays usable all test long)."""
    good, hung = sim.add(), sim.add()
    ids = register(good, hung)
    with Fleet().locations.registry.open("a") as handle:
        handle.write("\n[settings]\ntimeout = 1.0\nunhealthy_ttl = 3600\nstale_ttl = 3600\nhealth_ttl = 3600\n")
    hung.set_fault("hang")
    assert run("refresh").exit_code != 0
    assert Fleet().store.read()["health"][ids[1]]["healthy"] is False
    return good, hung, ids


def skipped_line(result, hung_id):
    lines = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(lines) == 1, result.stderr
    assert hung_id in lines[0] and "known to be down" in lines[0] and "ollamactl refresh" in lines[0]
    return lines[0]


def test_model_commands_do_not_wait_on_an_instance_known_down(sim):
    good, hung, ids = known_down_fleet(sim)
    seen = len(hung.requests)
    commands = [("ps",), ("pull", "llama3.2"), ("sync", "--dry-run"), ("load", "llama3.2"),
                ("unload", "llama3.2"), ("rm", "qwen2.5:7b", "--all", "--yes", "--force")]
    for command in commands:
        result = run(*command)
        skipped_line(result, ids[1])
        assert len(hung.requests) == seen, (command, [r.path for r in hung.requests[seen:]])
    assert "qwen2.5:7b" not in {m.name for m in good.config.models}  # rm did its work on the good one


def test_ps_lists_the_instance_left_out_and_still_exits_1(sim):
    good, hung, ids = known_down_fleet(sim)
    seen = len(hung.requests)
    result = run("ps", "--json")
    assert result.exit_code == 1  # some instance could not be asked, as before
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    assert rows[ids[0]]["error"] is None and rows[ids[0]]["models"]
    assert rows[ids[1]]["models"] is None and "not asked" in rows[ids[1]]["error"]
    assert len(hung.requests) == seen


def test_run_of_a_missing_model_rechecks_the_healthy_but_not_the_instance_known_down(sim):
    good, hung, ids = known_down_fleet(sim)
    seen, tags = len(hung.requests), sum(r.path == "/api/tags" for r in good.requests)
    result = run("run", "nosuch:1b", "hi")
    assert result.exit_code == 3, result.stderr
    assert sum(r.path == "/api/tags" for r in good.requests) == tags + 1  # pulled since the last check?
    assert len(hung.requests) == seen
    assert f"{ids[1]} ({hung.url}) unhealthy: timed out" in result.stderr  # the listing says why it is out


def test_naming_an_instance_known_down_asks_it(sim):
    good, hung, ids = known_down_fleet(sim)
    seen = len(hung.requests)
    result = run("ps", ids[1])
    assert result.exit_code == 1 and "skipped" not in result.stderr
    assert [r.path for r in hung.requests[seen:]] == ["/api/ps"]
