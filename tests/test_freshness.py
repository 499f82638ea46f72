"""Health that follows the fleet: freshness rules, stale-while-revalidate, one background refresh,
a stopped instance leaving the rotation and a restarted one rejoining it, clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import run

from ollamactl.core.fleet import Fleet
from ollamactl.core.health import background
from ollamactl.core.health import cache as health_cache
from ollamactl.core.health import probe as health
from ollamactl.core.health.probe import HealthResult
from ollamactl.core.registry.instances import Instance
from ollamactl.core.routing import router as routing

T0 = 1_000_000.0


def entry(healthy: bool, checked_at: float, url: str = "http://gpu1:11434") -> dict:
    return HealthResult("a", url, healthy, None if healthy else "connection refused", checked_at=checked_at).to_cache()


def write_settings(text: str) -> None:
    with Fleet().locations.registry.open("a") as handle:
        handle.write(f"\n[settings]\n{text}\n")


def test_freshness_rules_per_verdict_and_the_stale_window():
    rules = health_cache.Freshness(healthy=5.0, unhealthy=2.0, stale=10.0)
    assert [rules.state(entry(True, 0), age) for age in (0, 5, 5.1, 10, 10.1)] == \
        ["fresh", "fresh", "stale", "stale", None]
    assert [rules.state(entry(False, 0), age) for age in (0, 2, 2.1, 10, 10.1)] == \
        ["fresh", "fresh", "stale", "stale", None]
    instance = Instance(id="a", name="a", url="http://gpu1:11434")
    data = {"health": {"a": entry(True, T0)}}
    assert health_cache.usable_entry(data, instance, T0 + 3600) is not None  # age is Freshness's business
    assert health_cache.usable_entry(data, instance._replace(url="http://gpu1:8080"), T0) is None  # moved
    assert health_cache.usable_entry(data, instance, T0 - 3600) is None  # stamped in the future
    for broken in ({"health": {"a": "junk"}}, {"health": {"a": {"url": 1}}}, {"health": []}, {}):
        assert health_cache.usable_entry(broken, instance, T0) is None


def test_the_defaults_keep_the_10_s_promise_and_settings_are_checked(fleet):
    fleet.add("gpu1")
    rules = health_cache.Freshness.of(fleet.registry())
    assert rules.healthy <= 5 and rules.unhealthy <= 5 and rules.stale <= 10
    write_settings("health_ttl = 300")  # an old registry's setting alone stays valid: stale stretches
    assert health_cache.Freshness.of(fleet.registry()) == (300.0, 2.0, 300.0)
    config = fleet.locations.registry
    config.write_text(config.read_text().replace("health_ttl = 300", "health_ttl = 30\nstale_ttl = 10"))
    result = run("list")
    assert result.exit_code == 1  # an unusable registry, named, never rewritten
    assert "settings.stale_ttl must be at least health_ttl (30), got 10" in result.stderr


def test_stale_entries_answer_at_once_and_ask_for_one_revalidation(sim, fleet):
    up = sim.add()
    instance = fleet.add(up.url)
    fleet.store.update(lambda d: d["health"].update({instance.id: entry(True, T0, up.url)}))
    calls = []
    lookup = health_cache.current([instance], fleet.registry(), fleet.store, fleet.store.read(), T0 + 7,
                                  revalidate=lambda: calls.append(1) or True)
    assert calls == [1] and lookup.stale == {instance.id} and not up.requests  # answered from the cache
    assert "checked 7 s ago; re-checking in the background" in lookup.words(instance.id)
    # no background refresh possible: probed now instead
    lookup = health_cache.current([instance], fleet.registry(), fleet.store, fleet.store.read(), T0 + 7,
                                  revalidate=lambda: False)
    assert not lookup.stale and up.requests and lookup.entries[instance.id]["checked_at"] > T0
    # too old to answer from: probed before answering, no revalidation needed
    fleet.store.update(lambda d: d["health"].update({instance.id: entry(True, T0, up.url)}))
    lookup = health_cache.current([instance], fleet.registry(), fleet.store, fleet.store.read(), T0 + 11,
                                  revalidate=lambda: calls.append(2) or True)
    assert calls == [1] and lookup.entries[instance.id]["checked_at"] > T0


def test_a_stopped_instance_leaves_and_a_restarted_one_rejoins_on_a_fake_clock(sim, fleet, monkeypatch):
    """Default settings; the background refresh runs when asked, results stamped by the fake clock."""
    steady, flaky = sim.add(), sim.add()
    fleet.add(steady.url, name="steady")
    fleet.add(flaky.url, name="flaky")
    reg = fleet.registry()
    clock = {"now": T0}
    foreground = []
    real_check = health.check

    def counting_check(*args, **kwargs):
        foreground.append(clock["now"])
        return real_check(*args, **kwargs)

    def background_refresh() -> bool:
        results = real_check(reg.instances, timeout=2.0)
        health.save(fleet.store, [r._replace(checked_at=clock["now"]) for r in results])
        return True

    background_refresh()
    monkeypatch.setattr(health, "check", counting_check)
    seen: list[tuple[float, str]] = []
    for step in range(0, 81):
        t = step * 0.5
        if t == 5:
            flaky.set_fault("refuse")  # killed: nothing listens on its port
        if t == 25:
            flaky.set_fault(None)  # restarted on the same port
        clock["now"] = T0 + t
        decision = routing.select(routing.Request(count=2), reg, fleet.store, fleet.warn, fleet.default_instance,
                                  now=clock["now"], revalidate=background_refresh)
        seen += [(t, i.name) for i in decision.picks]
    assert not foreground, "a pick with a usable cache waited on the network"
    flaky_at = [t for t, name in seen if name == "flaky"]
    assert max(t for t in flaky_at if t < 25) < 5 + 10  # gone within 10 s of being stopped ...
    assert not [t for t in flaky_at if 5 + 10 <= t < 25]  # ... and stays gone
    assert min(t for t in flaky_at if t >= 25) <= 25 + 10  # back within 10 s of the restart
    assert {name for t, name in seen if t >= 36} == {"steady", "flaky"}


def run_pick(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ollamactl", "pick", *args], capture_output=True, text=True,
                          timeout=60, **kwargs)


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_real_picks_drop_a_stopped_instance_and_take_it_back_in_default_settings(sim):
    steady, flaky = sim.add(), sim.add()
    Fleet().add(steady.url, name="steady")
    Fleet().add(flaky.url, name="flaky")
    assert run("refresh").exit_code == 0
    flaky.set_fault("refuse")
    stopped = time.monotonic()
    wait_for(lambda: flaky.url not in run_pick("-n", "2").stdout, 30)
    gone_after = time.monotonic() - stopped
    flaky.set_fault(None)
    restarted = time.monotonic()
    wait_for(lambda: flaky.url in run_pick("-n", "2").stdout, 30)
    back_after = time.monotonic() - restarted
    assert gone_after <= 10 and back_after <= 10, (gone_after, back_after)


def test_parallel_stale_picks_start_exactly_one_background_refresh(sim):
    slow = sim.add(latency=4.0)  # the refresher holds its lock while it waits for this answer
    instance = Fleet().add(slow.url)
    write_settings("stale_ttl = 600")
    Fleet().refresh()
    Fleet().store.update(lambda d: d["health"][instance.id].update(checked_at=time.time() - 60))
    before = sum(r.path == "/api/version" for r in slow.requests)
    picks = [subprocess.Popen([sys.executable, "-m", "ollamactl", "pick", "--explain"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(16)]
    outcomes = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in picks]
    assert all((code, out) == (0, f"{slow.url}\n") for code, out, _ in outcomes), outcomes
    assert all("re-checking in the background" in err for *_, err in outcomes)
    state_dir = os.fspath(Fleet().locations.state_dir)
    wait_for(lambda: not background.is_running(state_dir), 60)
    assert sum(r.path == "/api/version" for r in slow.requests) - before == 1
    assert time.time() - Fleet().store.read()["health"][instance.id]["checked_at"] < 30  # it was saved


@pytest.mark.parametrize("command", [["health", "--timeout", "60"], ["health", "--watch", "--timeout", "60"],
                                     ["refresh"], ["pick", "--refresh"], ["run", "llama3.2", "hi"]])
def test_ctrl_c_during_a_hung_probe_is_one_line_and_exit_130(sim, command):
    hung = sim.add(fault="hang")
    Fleet().add(hung.url)
    if command[0] in ("refresh", "pick", "run"):
        write_settings("timeout = 60")
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: len(hung.requests) >= 2)  # the probe is under way and hanging
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert (process.returncode, err) == (130, "ollamactl: error: interrupted\n")
