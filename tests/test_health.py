"""The health core against simulated servers over real loopback sockets: words, deadlines, keys, cache."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from ollamactl import __version__
from ollamactl.core import http
from ollamactl.core.fleet import Fleet
from ollamactl.core.health import probe as health
from ollamactl.core.health.probe import HealthResult
from ollamactl.core.registry.instances import Instance
from ollamactl.sim import SimModel

SECRET = "sk-health-5ecr3t-0a1b2c"


def inst(instance_id: str, url: str, **fields) -> Instance:
    return Instance(id=instance_id, name=instance_id, url=url, **fields)


def by_id(results: list[HealthResult]) -> dict[str, HealthResult]:
    return {r.id: r for r in results}


def test_every_fault_mode_in_words_and_bounded_by_the_deadline(sim):
    faults = [None, "refuse", "hang", "drip", "http500", "garbage", "busy503", "midstream", "truncated"]
    instances = [inst(str(f), sim.add(fault=f).url) for f in faults]
    legacy = sim.add(legacy=True)
    instances.append(inst("legacy", legacy.url))
    instances.append(inst("prefix", legacy.url + "/not-ollama"))  # every path there: plain-text 404
    seen = []
    # 1.5 s: eleven probes at once on a loaded 2-core machine (load 36) took the healthy one past 0.5 s;
    # hang and drip end with the deadline's own words below (a dripping server is never silent)
    results = health.check(instances, timeout=1.5, on_result=seen.append)
    assert [r.id for r in results] == [i.id for i in instances]  # the instances' order
    assert sorted(r.id for r in seen) == sorted(i.id for i in instances)  # each reported once
    r = by_id(results)

    ok = r["None"]
    assert ok.healthy and ok.error is None and ok.version == "0.12.6"
    assert {m["name"] for m in ok.models} == {"llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest"}
    assert all(len(m["digest"]) == 64 and m["size"] > 0 for m in ok.models)
    assert ok.loaded == ["llama3.2:latest"]
    assert 0 < ok.latency_ms < 3000 and abs(ok.checked_at - time.time()) < 10

    assert (r["refuse"].healthy, r["refuse"].error) == (False, "connection refused")
    assert r["hang"].error == "timed out after 1.5 s"
    assert r["drip"].error == "timed out after 1.5 s"
    assert r["hang"].latency_ms is None  # no answer: no server time to show
    assert r["http500"].error == "HTTP 500: llama runner process has terminated: exit status 2"
    assert r["garbage"].error == "not an Ollama server"
    assert r["prefix"].error == "not an Ollama server"
    for name in ("busy503", "midstream", "truncated"):  # generation faults: the probes still answer
        assert r[name].healthy, r[name]
    assert r["legacy"].healthy and r["legacy"].loaded is None  # no /api/ps: unknown, not unhealthy
    for name in ("refuse", "hang", "drip", "http500", "garbage", "prefix"):
        bad = r[name]
        assert not bad.healthy and bad.version is None and not bad.models and bad.loaded is None
        assert "Error" not in bad.error and "(" not in bad.error.split(":")[0]  # words, not a repr


def test_timeout_words_keep_the_deadline_given(sim):
    hung = sim.add(fault="hang")
    assert health.check([inst("h", hung.url)], timeout=0.25)[0].error == "timed out after 0.25 s"
    assert http.seconds(2) == "2.0" and http.seconds(2.0) == "2.0" and http.seconds(0.5) == "0.5"


def test_unresolvable_host_is_named():
    host = "no-such-host.invalid"
    started = time.monotonic()
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror:
        pass
    else:  # pragma: no cover - a resolver that answers for .invalid
        pytest.skip("this resolver answers for .invalid")
    if time.monotonic() - started > 1.0:  # pragma: no cover
        pytest.skip("DNS lookups are slow here")
    result = health.check([inst("dns", f"http://{host}:11434")], timeout=2.0)[0]
    assert result.error == f"cannot resolve host {host}"


def test_api_key_goes_only_to_its_own_instance(sim, monkeypatch):
    keyed = sim.add(api_key=SECRET)
    open_ = sim.add()
    monkeypatch.setenv("GPU_KEY", SECRET)
    instances = [
        inst("keyed", keyed.url, api_key=SECRET),
        inst("keyed-env", keyed.url, api_key_env="GPU_KEY"),
        inst("no-key", keyed.url),
        inst("wrong-key", keyed.url, api_key="sk-wrong"),
        inst("open", open_.url),
    ]
    r = by_id(health.check(instances, timeout=2.0))
    assert r["keyed"].healthy and r["keyed-env"].healthy and r["open"].healthy
    assert r["no-key"].error == "HTTP 401: unauthorized (check the API key)"
    assert r["wrong-key"].error == "HTTP 401: unauthorized (check the API key)"
    assert open_.requests and all("authorization" not in q.headers for q in open_.requests)
    sent = [q.headers.get("authorization") for q in keyed.requests]
    assert sent.count(f"Bearer {SECRET}") == 6  # keyed and keyed-env, three probes each
    # the probes introduce themselves as run and embed do (http.client_headers), asking for no compression
    assert {(q.headers.get("user-agent"), q.headers.get("accept-encoding")) for q in open_.requests} == \
        {(f"ollamactl/{__version__}", "identity")}
    assert SECRET not in repr(list(r.values()))


def test_proxy_environment_is_ignored(sim_instance, monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # a proxy that refuses: must not be used
    assert health.check([inst("a", sim_instance.url)], timeout=2.0)[0].healthy


def test_concurrency_cap_is_respected(sim):
    """Instances registered under one server: the server counts the probes it answers at once."""
    capped = sim.add(latency=0.2)
    results = health.check([inst(f"s{n}", capped.url) for n in range(4)], timeout=2.0, concurrency=2)
    assert all(r.healthy for r in results)
    assert capped.max_in_flight <= 2 * health.REQUESTS_PER_PROBE  # two probes at a time, never four
    shared = sim.add(latency=0.2)
    assert all(r.healthy for r in health.check([inst(f"m{n}", shared.url) for n in range(8)], timeout=2.0))
    assert shared.max_in_flight > 2 * health.REQUESTS_PER_PROBE  # all eight at once, not in waves


def test_check_async_inside_a_running_loop(sim_instance):
    async def main():
        return await health.check_async([inst("a", sim_instance.url)], timeout=2.0)

    assert asyncio.run(main())[0].healthy
    assert health.check([], timeout=1.0) == []


def test_save_writes_the_documented_cache_shape(sim, monkeypatch):
    a = sim.add(models=[SimModel("llama3.2", digest="a" * 64, size=1000)], loaded=[])
    b = sim.add(fault="refuse")
    results = health.check([inst("a", a.url), inst("b", b.url)], timeout=2.0)
    health.save(Fleet().store, results)
    data = json.loads(Fleet().locations.state_file.read_text())
    entry = data["health"]["a"]
    assert set(entry) == {"url", "healthy", "error", "latency_ms", "version", "models", "loaded", "checked_at"}
    assert entry["url"] == a.url and entry["healthy"] is True and entry["error"] is None
    assert entry["models"] == [{"name": "llama3.2:latest", "digest": "a" * 64, "size": 1000}]
    assert entry["loaded"] == [] and isinstance(entry["checked_at"], float)
    assert data["health"]["b"]["healthy"] is False and data["health"]["b"]["error"] == "connection refused"
    assert data["health"]["b"]["loaded"] is None
    # merged, not replaced: a later save of one instance keeps the others
    health.save(Fleet().store, [HealthResult("c", "http://c:1", False, "connection refused", checked_at=1.0)])
    assert set(Fleet().store.read()["health"]) == {"a", "b", "c"}
    assert HealthResult.from_cache("a", entry) == results[0]
    assert HealthResult.from_cache("a", results[0].to_cache()).to_cache() == results[0].to_cache()


def test_latency_is_the_servers_answer_time_not_the_clients(sim):
    quick, slow = sim.add(latency=0.05), sim.add(latency=0.25)
    results = health.check([inst("quick", quick.url), inst("slow", slow.url)], timeout=5.0)
    assert 50 <= results[0].latency_ms < results[1].latency_ms and results[1].latency_ms >= 250


def test_corrupt_state_file_is_rebuilt_on_save(sim_instance, fleet):
    fleet.locations.state_dir.mkdir(parents=True, exist_ok=True)
    fleet.locations.state_file.write_text("{not json")
    health.save(fleet.store, health.check([inst("a", sim_instance.url)], timeout=2.0))
    assert len(fleet.warnings) == 1 and "corrupt" in fleet.warnings[0]
    assert fleet.store.read()["health"]["a"]["healthy"] is True


@pytest.mark.parametrize("key, expect_sent", [("sekrit-key-123\n", True), ("sekrit-kéy", False)])
def test_a_key_with_a_newline_is_trimmed_and_one_no_header_can_carry_is_refused_unquoted(
        sim, monkeypatch, key, expect_sent):
    server = sim.add(api_key="sekrit-key-123")
    monkeypatch.setenv("GPU_KEY", key)
    instance = Instance(id="a", name="a", url=server.url, api_key_env="GPU_KEY")
    result = health.check([instance], timeout=2.0)[0]
    assert result.healthy is expect_sent
    if not expect_sent:
        assert "cannot be sent" in result.error and "sekrit" not in result.error
        assert not server.requests  # nothing went out with a mangled key
