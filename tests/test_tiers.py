"""Priority tiers: a lower tier gets work only when every better one is down or busy; registry
flags, `--explain`, and the gateway exports' equivalents (nginx/HAProxy `backup`, LiteLLM `order`)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import yaml
from cli_helpers import ok, one_error_line, run
from gateway_engines import HAProxy, Nginx
from lease_helpers import cached_fleet, finish, ollamactl, set_health

from ollamactl.core.fleet import Fleet
from ollamactl.core.registry.instances import Instance
from ollamactl.core.routing import selection


def inst(instance_id, priority=0, max_inflight=None):
    return Instance(id=instance_id, name=instance_id, url=f"http://{instance_id}:11434", priority=priority,
                    max_inflight=max_inflight)


def test_by_capacity_uses_the_best_tier_with_room_and_spills_only_then():
    a, b, c = inst("a", 0, 1), inst("b", 0, 1), inst("c", selection.BACKUP_TIER)
    chosen, spare, reasons = selection.by_capacity([a, b, c], {})
    assert (chosen, spare) == ([a, b], [c])
    assert reasons == {"c": "tier backup: skipped, tier 0 has capacity"}
    chosen, spare, reasons = selection.by_capacity([a, b, c], {"a": 1, "b": 1})
    assert (chosen, spare) == ([c], [])
    assert reasons == {"a": "busy (1/1 in flight)", "b": "busy (1/1 in flight)"}


@pytest.fixture(params=["file", "redis"])
def store(request):
    if request.param == "redis":
        request.getfixturevalue("redis_store")
    return request.param


def test_backup_tier_gets_nothing_while_tier_0_is_healthy_and_everything_once_it_is_down(store):
    gpu1, gpu2, cpu = cached_fleet({}, {}, {"priority": "backup"})
    first = Counter(run("pick", "-n", "20").stdout.split())
    assert first == {"http://box1:11434": 10, "http://box2:11434": 10}
    explained = run("pick", "--explain")
    assert f"{cpu}  http://box3:11434  tier backup: skipped, tier 0 has capacity" in explained.stderr
    set_health([gpu1, gpu2], False)
    assert Counter(run("pick", "-n", "20").stdout.split()) == {"http://box3:11434": 20}


def test_numbered_tiers_spill_in_order():
    cached_fleet({"priority": 2}, {"priority": 1}, {"priority": -1, "healthy": False})
    assert run("pick").stdout == "http://box2:11434\n"
    assert "tier 2: skipped, tier 1 has capacity" in run("pick", "--explain").stderr


def test_on_a_simulated_fleet_the_cpu_backup_gets_no_work_until_the_gpu_tier_is_down(sim):
    gpus = [sim.add(), sim.add()]
    cpu = sim.add()
    current = Fleet()
    for server in gpus:
        current.add(server.url)
    current.add(cpu.url, name="cpu", priority="backup")
    current.check()
    jobs = [ollamactl("exec", "-m", "llama3.2", "--", "sh", "-c",
                      'curl -sf "$OLLAMA_HOST/api/generate" -d \'{"model":"llama3.2","prompt":"hi","stream":false}\''
                      " >/dev/null")
            for _ in range(6)]
    assert [finish(job)[0] for job in jobs] == [0] * 6
    generated = [sum(r.path == "/api/generate" for r in server.requests) for server in (*gpus, cpu)]
    assert generated == [3, 3, 0]
    for server in gpus:
        server.set_fault("refuse")
    assert run("refresh").exit_code == 4  # some are down: the point of this test
    result = ok("run", "llama3.2", "hi")
    assert result.stdout
    assert sum(r.path == "/api/generate" for r in cpu.requests) == 1


def test_priority_and_max_inflight_flags_round_trip_through_the_registry(isolated_env):
    ok("add", "gpu1", "--max-inflight", "4")
    ok("add", "cpu1", "--priority", "backup")
    ok("add", "gpu2", "-p", "1")
    listed = {i["id"]: i for i in json.loads(ok("list", "--json").stdout)}
    assert (listed["gpu1-11434"]["priority"], listed["gpu1-11434"]["max_inflight"]) == (0, 4)
    assert listed["cpu1-11434"]["priority"] == "backup" and listed["gpu2-11434"]["priority"] == 1
    assert 'priority = "backup"' in isolated_env["config"].read_text()
    ok("update", "gpu1-11434", "--max-inflight", "0", "--priority", "-2")
    gpu1 = Fleet().find("gpu1-11434")
    assert (gpu1.priority, gpu1.max_inflight) == (-2, None)
    before = isolated_env["config"].read_text()
    for args in (("--priority", "first"), ("--priority", "5000"), ("--max-inflight", "-1")):
        result = run("update", "gpu1-11434", *args)
        assert result.exit_code == 2, args
        one_error_line(result)
    assert isolated_env["config"].read_text() == before


def test_exports_map_tiers_and_capacity_to_the_engines_flags_and_the_engines_accept_them(tmp_path):
    ids = cached_fleet({"max_inflight": 4}, {}, {"priority": "backup"}, host="127.0.0.1:1190{}")  # nothing listens
    nginx, haproxy = tmp_path / "nginx.conf", tmp_path / "haproxy.cfg"
    ok("export", "--format", "nginx", "-o", str(nginx))
    text = nginx.read_text()
    assert "server 127.0.0.1:11901 weight=1 max_fails=3 fail_timeout=2s max_conns=4;" in text
    assert "server 127.0.0.1:11903 weight=1 max_fails=3 fail_timeout=2s backup;" in text
    assert "server 127.0.0.1:11902 weight=1 max_fails=3 fail_timeout=2s;" in text
    Nginx(tmp_path / "nginx").check(nginx)  # nginx -t: the real engine takes backup and max_conns
    ok("export", "--format", "haproxy", "-o", str(haproxy))
    text = haproxy.read_text()
    assert " weight 1 maxconn 4" in text and re.search(rf"server {ids[2]} 127.0.0.1:11903 .* weight 1 backup", text)
    HAProxy(tmp_path / "haproxy", {}).check(haproxy)  # haproxy -c
    config = yaml.safe_load(ok("export", "--format", "litellm").stdout)
    orders = {d["litellm_params"]["api_base"]: d["litellm_params"].get("order") for d in config["model_list"]}
    assert orders == {"http://127.0.0.1:11901": 1, "http://127.0.0.1:11902": 1, "http://127.0.0.1:11903": 2}
    assert config["model_list"][0]["litellm_params"]["max_parallel_requests"] == 4
