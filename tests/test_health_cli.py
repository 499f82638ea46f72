"""health / refresh / models / simulate through the real CLI, against simulated servers."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run

from ollamactl.cli import output
from ollamactl.cli.health import health_view
from ollamactl.core.fleet import Fleet
from ollamactl.core.health import probe as health
from ollamactl.sim import SimModel

SECRET = "sk-health-cli-5ecr3t-77aa"
JSON_KEYS = {"id", "name", "url", "type", "enabled", "healthy", "error", "latency_ms", "version", "models",
             "loaded", "checked_at", "age_s", "ejected_until"}


def test_exit_codes_all_some_none(sim):
    good, bad = sim.add(), sim.add(fault="refuse")
    a = Fleet().add(good.url, name="good")
    result = run("health")
    assert result.exit_code == 0, result.stderr
    assert "healthy" in result.stdout and good.url in result.stdout
    Fleet().add(bad.url, name="bad")
    result = run("health", "--timeout", "2")
    assert result.exit_code == 4
    assert "unhealthy" in result.stdout and "connection refused" in result.stdout
    assert run("health", "bad").exit_code == 3
    assert run("health", a.id).exit_code == 0
    assert run("health", "nope").exit_code == 2


def test_json_schema(sim):
    one = sim.add(loaded=["qwen2.5:7b"])
    legacy = sim.add(legacy=True)
    Fleet().add(one.url, name="one")
    Fleet().add(legacy.url, name="old")
    result = run("health", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["one", "old"]
    for row in rows:
        assert JSON_KEYS <= set(row)
        assert row["healthy"] is True and row["error"] is None and row["enabled"] is True
        assert row["type"] == "both" and row["version"] == "0.12.6"
        assert isinstance(row["latency_ms"], float) and row["ejected_until"] is None
        assert row["models"] == ["llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest"]
        stamp = dt.datetime.fromisoformat(row["checked_at"].replace("Z", "+00:00"))
        assert stamp.utcoffset() == dt.timedelta(0) and abs(stamp.timestamp() - time.time()) < 30
    assert rows[0]["loaded"] == ["qwen2.5:7b"] and rows[1]["loaded"] is None
    assert set(Fleet().store.read()["health"]) == {r["id"] for r in rows}  # every check is saved


def test_ejected_status_from_the_breaker(sim):
    instance = Fleet().add(sim.add().url, name="gpu")
    until = time.time() + 120

    def eject(data):
        data["breaker"][instance.id] = {"failures": 3, "ejections": 1, "ejected_until": until}

    Fleet().store.update(eject)
    shown = time.strftime("%H:%M:%S", time.localtime(until))
    assert f"ejected until {shown}" in run("health").stdout
    row = json.loads(run("health", "--json").stdout)[0]
    assert dt.datetime.fromisoformat(row["ejected_until"].replace("Z", "+00:00")).timestamp() == pytest.approx(until)


def test_disabled_skipped_unless_all_or_named(sim):
    Fleet().add(sim.add().url, name="on")
    Fleet().add(sim.add(fault="refuse").url, name="off", enabled=False)
    assert [r["name"] for r in json.loads(run("health", "--json").stdout)] == ["on"]
    result = run("health", "--json", "--all")
    assert [r["name"] for r in json.loads(result.stdout)] == ["on", "off"] and result.exit_code == 4
    assert json.loads(run("health", "--json", "off").stdout)[0]["enabled"] is False
    Fleet().disable("on")
    result = run("health")
    assert result.exit_code == 3 and "--all" in result.stderr


def test_no_instances_checks_the_default(sim_instance, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", sim_instance.url)
    result = run("health", "--json")
    assert result.exit_code == 0
    assert "no instances registered" in result.stderr and sim_instance.url in result.stderr
    assert json.loads(result.stdout)[0]["id"] == "default"


def test_corrupt_state_file_is_rebuilt_and_the_command_works(sim_instance):
    Fleet().add(sim_instance.url, name="gpu")
    Fleet().locations.state_dir.mkdir(parents=True, exist_ok=True)
    Fleet().locations.state_file.write_text("\x00garbage{")
    result = run("health")
    assert result.exit_code == 0
    assert "corrupt" in result.stderr and "rebuilt" in result.stderr
    assert json.loads(Fleet().locations.state_file.read_text())["health"]


def test_refresh_output(sim):
    Fleet().add(sim.add().url, name="a")
    Fleet().add(sim.add().url, name="b")
    result = run("refresh")
    assert (result.exit_code, result.stdout.strip()) == (0, "2 instances: 2 healthy, 0 unhealthy")
    Fleet().add(sim.add(fault="http500").url, name="c")
    result = run("refresh", "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout) == {"total": 3, "healthy": 2, "unhealthy": 1}
    assert len(Fleet().store.read()["health"]) == 3


def render(grid, width: int) -> list[str]:
    return output.lines(grid, width)


def test_watch_rows_update_independently_while_one_probe_hangs(sim):
    steady, hung = Fleet().add(sim.add().url, name="steady"), Fleet().add(sim.add(fault="hang").url, name="hung")
    view = health_view.WatchView([steady, hung])
    answered: list[str] = []

    def on_result(result):
        view.finished(result)
        answered.append(result.id)

    Fleet().watch([steady, hung], interval=0.5, timeout=60, on_start=view.started, on_result=on_result,
                  on_tick=lambda: None, tick=0.05, stop=lambda: answered.count(steady.id) >= 4)
    assert answered == [steady.id] * 4  # four rounds of the steady row while the hung probe runs on
    lines = render(view.table({}, now=view.running[hung.id] + 3.2), 120)
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "healthy" in rows["steady"] and "checking… 3 s" in rows["hung"]
    assert Fleet().store.read()["health"][steady.id]["healthy"] is True  # the cache follows the watch


def test_the_table_fits_60_columns_and_shows_everything_at_120(sim):
    Fleet().add(sim.add().url, name="gpu-a")
    Fleet().add(sim.add(fault="http500").url, name="broken")
    rows = [(i, r, None) for i, r in zip(Fleet().instances(), Fleet().check(), strict=True)]
    narrow = render(health_view.health_table(rows, {}), 60)
    assert len(narrow) == 3 and all(len(line) <= 60 for line in narrow)  # header + one line per instance
    assert "…" in narrow[2] and "HTTP 500" in narrow[2]  # the long error is cut, not wrapped
    assert {"INSTANCE", "STATUS", "LATENCY", "ERROR"} <= set(narrow[0].split()) and "URL" not in narrow[0]
    wide = render(health_view.health_table(rows, {}), 120)
    assert wide[0].split() == list(health_view.COLUMNS) and len(wide) == 3


def test_watch_command_off_a_terminal_prints_plain_tables_and_stops_on_ctrl_c(sim, monkeypatch):
    Fleet().add(sim.add().url, name="gpu")
    shown = []

    def show_then_interrupt(table):
        shown.append(render(table, 120))
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "show", show_then_interrupt)
    result = run("health", "--watch", "--interval", "0.5")
    assert result.exit_code == 130 and result.stderr == "ollamactl: error: interrupted\n"
    assert "health at" in shown[0][0] and "healthy" in shown[0][2]
    real_row = health_view.json_row

    def row_then_interrupt(*args):
        if real_row.calls:
            raise KeyboardInterrupt
        real_row.calls.append(1)
        return real_row(*args)

    real_row.calls = []
    monkeypatch.setattr(health_view, "json_row", row_then_interrupt)
    result = run("health", "--watch", "--json", "--interval", "0.5")
    assert result.exit_code == 130 and json.loads(result.stdout.splitlines()[0])["healthy"] is True


def test_models_with_a_digest_mismatch(sim):
    same, other = "a" * 64, "b" * 64
    s1 = sim.add(models=[SimModel("llama3.2", digest=same), SimModel("bge-m3", embedding=True)], loaded=["llama3.2"])
    s2 = sim.add(models=[SimModel("llama3.2:latest", digest=same)], loaded=[])
    s3 = sim.add(models=[SimModel("llama3.2", digest=other)], legacy=True)
    ids = [Fleet().add(s.url, name=f"gpu{n}").id for n, s in enumerate((s1, s2, s3), start=1)]
    result = run("models", "--json")
    assert result.exit_code == 0, result.stderr
    listing = {item["model"]: item["instances"] for item in json.loads(result.stdout)}
    assert set(listing) == {"llama3.2:latest", "bge-m3:latest"}
    assert listing["llama3.2:latest"] == [
        {"id": ids[0], "loaded": True, "digest": same, "digest_differs": False},
        {"id": ids[1], "loaded": False, "digest": same, "digest_differs": False},
        {"id": ids[2], "loaded": None, "digest": other, "digest_differs": True},
    ]
    assert [e["id"] for e in listing["bge-m3:latest"]] == [ids[0]]
    # the cache is fresh now: no new probes; the table marks the odd build
    before = len(s1.requests)
    table = run("models")
    assert len(s1.requests) == before
    assert "differs" in table.stdout and "bbbbbbbbbbbb" in table.stdout


def test_models_rechecks_stale_entries_and_notes_unhealthy_ones(sim):
    up, down = sim.add(), sim.add(fault="garbage")
    a = Fleet().add(up.url, name="up")
    Fleet().add(down.url, name="down")

    def stale(data):
        data["health"][a.id] = health.HealthResult(a.id, a.url, True, checked_at=1.0).to_cache()

    Fleet().store.update(stale)
    result = run("models", "--json")
    assert "not an Ollama server" in result.stderr
    assert {item["model"] for item in json.loads(result.stdout)} == {
        "llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest"}


def test_the_api_key_never_appears_in_any_output(sim):
    keyed = sim.add(api_key=SECRET)
    wrong = sim.add(api_key="sk-other")
    Fleet().add(keyed.url, name="keyed", api_key=SECRET)
    Fleet().add(wrong.url, name="wrong", api_key=SECRET)
    outputs = []
    for args in (("health",), ("health", "--json"), ("refresh",), ("refresh", "--json"), ("models",),
                 ("models", "--json"), ("health", "wrong")):
        result = run(*args)
        outputs.append(result.stdout + result.stderr)
    assert "HTTP 401: unauthorized (check the API key)" in outputs[0]
    assert all(SECRET not in text for text in outputs)
    assert SECRET not in Fleet().locations.state_file.read_text()
    assert any(q.headers.get("authorization") == f"Bearer {SECRET}" for q in keyed.requests)


def test_simulate_registers_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "ollamactl", "simulate", "--instances", "2", "--register",
               "--fault", "2=http500"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        urls = [process.stdout.readline().strip() for _ in range(2)]
        deadline = time.monotonic() + 10
        while len(Fleet().registry().instances) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        reg = Fleet().registry()
        assert [i.url for i in reg.instances] == urls
        assert [i.name for i in reg.instances] == ["sim-1", "sim-2"]
        results = health.check(reg.instances, timeout=2.0)
        assert results[0].healthy and results[1].error.startswith("HTTP 500")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "Ctrl-C" in err
    assert not Fleet().registry().instances  # what it registered is gone again (see test_simulate_cli.py)


def test_simulate_rejects_bad_faults():
    assert run("simulate", "--fault", "x").exit_code == 2
    assert run("simulate", "--instances", "1", "--fault", "2=hang").exit_code == 2
    assert run("simulate", "--fault", "1=melt").exit_code == 2


def test_watch_follows_the_registry_added_instances_appear_and_removed_ones_go(sim, monkeypatch):
    """`health --watch` re-reads the registry each interval: driven frame by frame (the monitor's waits
    injected, so no interval is slept), an instance added after the first frame is shown (and probed)
    from the next one on, and a removed one leaves the table and is no longer probed."""
    import asyncio
    import functools

    from ollamactl.core import fleet as fleet_module

    gone, stays, new = sim.add(), sim.add(), sim.add()
    Fleet().add(gone.url, name="gone-soon")
    Fleet().add(stays.url, name="stays")
    frames: list[list[str]] = []
    removed_at: list[int] = []

    async def no_wait(seconds: float) -> None:  # every interval and tick passes at once
        await asyncio.sleep(0)

    def show(table):
        frames.append(render(table, 120))
        if len(frames) == 1:
            Fleet().add(new.url, name="added-later")
            Fleet().remove("gone-soon")
            removed_at.append(len(gone.requests))
        if any("added-later" in line and "healthy" in line for line in frames[-1]) or len(frames) > 2000:
            raise KeyboardInterrupt

    monkeypatch.setattr(output, "show", show)
    monkeypatch.setattr(fleet_module.Fleet, "watch", functools.partialmethod(fleet_module.Fleet.watch, sleep=no_wait))
    result = run("health", "--watch", "--interval", "2")
    assert result.exit_code == 130, result.stderr
    names = [{name for line in frame[2:] for name in ("gone-soon", "stays", "added-later") if name in line}
             for frame in frames]
    assert names[0] == {"gone-soon", "stays"}
    assert all(shown == {"stays", "added-later"} for shown in names[1:]), names[1:]
    assert any("added-later" in line and "healthy" in line for line in frames[-1])  # probed, not only listed
    assert len(gone.requests) - removed_at[0] <= 3  # at most the probe in flight when it was removed


def test_following_the_registry_reads_it_only_when_it_changed_and_survives_a_bad_edit(fleet, monkeypatch):
    from ollamactl.core.registry import snapshot as registry_snapshot

    a = fleet.add("http://127.0.0.1:11600", name="a")
    fleet.add("http://127.0.0.1:11601", name="b")
    reads = []
    real_load = registry_snapshot.load
    monkeypatch.setattr(registry_snapshot, "load", lambda *args: reads.append(1) or real_load(*args))
    named = fleet.following(["a"])
    everything = fleet.following()
    reads.clear()
    assert [i.name for i in named()] == ["a"] and [i.name for i in everything()] == ["a", "b"]
    assert reads == []  # nothing changed: a stat, no read
    fleet.remove("a")
    reads.clear()
    assert [i.name for i in everything()] == ["b"] and len(reads) == 1  # changed: read once, not again for targets
    assert named() == [] and [i.name for i in everything()] == ["b"]
    path = fleet.locations.registry
    good = path.read_text()
    path.write_text(good + "[[instances]\n")  # a hand edit half saved
    assert [i.name for i in everything()] == ["b"] and "still watching the 1 instance(s)" in fleet.warnings[-1]
    path.write_text(good)
    fleet.add(a.url, name="a")
    assert [i.name for i in everything()] == ["b", "a"]


def test_the_thread_client_and_the_event_loop_show_the_same(sim, monkeypatch):
    """Up to THREADS_UP_TO instances are probed on threads, more on an event loop: what a person or
    a script sees is the same either way (only the timings differ)."""
    servers = {"good": sim.add(loaded=["qwen2.5:7b"]), "old": sim.add(legacy=True), "boom": sim.add(fault="http500"),
               "junk": sim.add(fault="garbage"), "gone": sim.add(fault="refuse")}
    for name, server in servers.items():
        Fleet().add(server.url, name=name)
    timings = re.compile(r'"(latency_ms|checked_at|age_s|expires_at)": [^,\n]+|\b\d+(\.\d+)? ?(ms|s)\b|\d+m \d+s')

    def seen(threads_up_to: int) -> list[tuple[int, str, str]]:
        monkeypatch.setattr(health, "THREADS_UP_TO", threads_up_to)
        shown = []
        for args in (["health", "--json"], ["health"], ["refresh", "--json"], ["ps", "--json", *servers], ["ps"]):
            result = run(*args)
            shown.append((result.exit_code, *(re.sub(" +", " ", timings.sub("T", text))  # a table's widths follow them
                                              for text in (result.stdout, result.stderr))))
        return shown

    on_threads = seen(len(servers))
    assert on_threads == seen(len(servers) - 1)
    assert [code for code, _, _ in on_threads] == [4, 4, 4, 1, 1]
    assert "HTTP 500" in on_threads[0][1] and "not an Ollama server" in on_threads[0][1]


@pytest.mark.parametrize("command", ["health", "ps"])
def test_ctrl_c_while_hung_instances_are_probed_exits_130_in_one_line(sim, command):
    hung = [sim.add(fault="hang") for _ in range(3)]
    for n, server in enumerate(hung):
        Fleet().add(server.url, name=f"hung{n}")
    config = Path(os.environ["OLLAMACTL_CONFIG"])
    config.write_text(config.read_text() + "\n[settings]\ntimeout = 600.0\n")  # the probes would wait 10 minutes
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(1000):  # until every instance has been asked (the probe threads are all waiting)
            if all(server.requests for server in hung):
                break
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)  # only against a hang of the test itself
    assert (process.returncode, err, out) == (130, "ollamactl: error: interrupted\n", "")
