"""The state file is a cache, for real (issue 11, point 4): whatever it holds, every reader gets
validated values or a rebuilt cache with one warning, never a traceback; a state dir that cannot be
used means no caching with one warning, and `pick`/`health` still answer. Fuzzed over the schema."""

from __future__ import annotations

import json
import time

import pytest
from cli_helpers import ok, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ollamactl.cli.health import health_view
from ollamactl.core.export import build as export
from ollamactl.core.export.common import NothingToExport, Options
from ollamactl.core.fleet import Fleet
from ollamactl.core.health import cache as health_cache
from ollamactl.core.health.probe import HealthResult
from ollamactl.core.models.inventory import model_map
from ollamactl.core.registry.instances import Instance
from ollamactl.core.routing import selection
from ollamactl.core.state import schema as state
from ollamactl.core.state.store import FileStore


def write_state(isolated_env, data) -> None:
    directory = isolated_env["state"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "state.json").write_text(data if isinstance(data, str) else json.dumps(data))


@pytest.fixture
def one_sim(sim):
    instance = sim.add()
    Fleet().add(instance.url, id="one")
    return instance


def test_a_breaker_stamp_of_1e300_is_dropped_not_fatal(one_sim, isolated_env):
    write_state(isolated_env, {"version": 1, "breaker": {"one": {"failures": 0, "ejections": 1,
                                                                 "ejected_until": 1e300}}})
    picked = ok("pick")
    assert picked.stdout.strip() == one_sim.url
    assert picked.stderr.count("warning") == 1 and "1 malformed entry" in picked.stderr
    ok("health")
    ok("run", "llama3.2", "hi")


def test_deeply_nested_json_is_rebuilt(one_sim, isolated_env):
    write_state(isolated_env, '{"version": 1, "extra": ' + "[" * 100_000 + "]" * 100_000 + "}")
    picked = ok("pick")
    assert picked.stdout.strip() == one_sim.url and "was corrupt; it is being rebuilt" in picked.stderr
    write_state(isolated_env, {"version": 1, "extra": json.loads("[" * 50 + "]" * 50)})
    assert "malformed" in ok("pick").stderr  # nesting a reader could choke on is not kept either


def test_a_digest_of_5_is_a_cache_miss_not_a_crash(one_sim, isolated_env):
    ok("refresh")
    path = isolated_env["state"] / "state.json"
    data = json.loads(path.read_text())
    data["health"]["one"]["models"][0]["digest"] = 5
    path.write_text(json.dumps(data))
    result = ok("models")
    assert "llama3.2:latest" in result.stdout


def test_an_oversized_state_file_is_rebuilt_unread(one_sim, isolated_env):
    write_state(isolated_env, json.dumps({"version": 1, "junk": "x" * (state.MAX_BYTES + 1)}))
    picked = ok("pick")
    assert picked.stdout.strip() == one_sim.url and "is larger than 32 MB" in picked.stderr


def test_an_unusable_state_dir_means_no_cache_and_one_warning(one_sim, isolated_env, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("OLLAMACTL_STATE_DIR", str(blocker / "state"))  # works even for root
    for args in (["pick"], ["health"], ["pick", "--explain"]):
        result = run(*args)
        assert result.exit_code == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "continuing without the cache" in warnings[0], result.stderr
    assert ok("pick").stdout.strip() == one_sim.url


# ---------------------------------------------------------------------------------------------
# Fuzz: any document, shaped like the schema or not, through every reader of the state.

NOW = 1_800_000_000.0
URLS = {"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:2", "c": "http://127.0.0.1:3"}
INSTANCES = tuple(Instance(id=i, name=i, url=u, type=t, weight=w)
                  for (i, u), t, w in zip(URLS.items(), ("both", "chat", "embedding"), (1, 2, 3), strict=True))

leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e300, -1e300, NOW, 0, -1])
        | st.text(max_size=8))
anything = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=12)
ids = st.sampled_from(sorted(URLS))
model = st.fixed_dictionaries({"name": st.sampled_from(["llama3.2:latest", "x[/b]"]) | leaf,
                               "digest": st.sampled_from(["d1", "d2"]) | leaf, "size": leaf})
health_entry = st.fixed_dictionaries({
    "url": st.sampled_from(sorted(URLS.values())) | leaf,
    "healthy": st.booleans() | leaf,
    "error": leaf, "latency_ms": leaf, "version": leaf,
    "models": st.lists(model | anything, max_size=3) | leaf,
    "loaded": st.lists(st.sampled_from(["llama3.2:latest"]) | leaf, max_size=2) | leaf,
    "checked_at": st.just(NOW) | leaf,
})
breaker_entry = st.fixed_dictionaries({"failures": leaf, "ejections": leaf, "ejected_until": leaf})
document = st.fixed_dictionaries({
    "version": st.just(1) | leaf,
    "health": st.dictionaries(ids, health_entry | anything, max_size=3) | leaf,
    "cursors": st.dictionaries(st.text(max_size=12), leaf, max_size=3),
    "weights": st.dictionaries(st.text(max_size=12), st.dictionaries(ids, leaf) | anything, max_size=2),
    "breaker": st.dictionaries(ids, breaker_entry | anything, max_size=3),
    "latency": st.dictionaries(ids, leaf, max_size=3),
    "future": anything,
}) | anything


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=document)
def test_every_reader_survives_any_state(tmp_path, doc):
    (tmp_path / "state.json").write_text(json.dumps(doc))  # NaN and Infinity are written as JSON allows
    warnings: list[str] = []
    store = FileStore(tmp_path, warnings.append)
    data = store.read()
    assert len(warnings) <= 1
    entries = {}
    for instance in INSTANCES:
        entry = health_cache.usable_entry(data, instance, NOW)
        if entry is not None:
            entries[instance.id] = entry
    results = {iid: HealthResult.from_cache(iid, entry) for iid, entry in entries.items()}
    for request_type in (None, "chat", "embedding"):
        screening = selection.screen(INSTANCES, request_type, "llama3.2", entries, data["breaker"], NOW)
        for strategy in selection.STRATEGIES:
            if screening.candidates:
                selection.choose(strategy, screening.candidates, 2, request_type=request_type, model="llama3.2",
                                 signals=selection.Signals(entries, data["latency"]), positions=data,
                                 entropy=b"\0" * 8)
    model_map(INSTANCES, results)
    ejected = {iid: until for iid, entry in data["breaker"].items()
               if (until := selection.ejected_until(entry, NOW)) is not None}
    for instance in INSTANCES:
        result = results.get(instance.id)
        health_view._cells((instance, result, None), ejected, NOW)
        if result is not None:
            json.dumps(health_view.json_row(instance, result, ejected, NOW), allow_nan=False)
    for fmt in ("json", "litellm", "nginx"):
        try:
            export.export(fmt, INSTANCES, data["health"], Options(now=NOW))
        except NothingToExport:
            pass
    store.update(lambda current: None)
    rewritten: list[str] = []
    FileStore(tmp_path, rewritten.append).read()
    assert rewritten == []  # what was kept is valid: the next reader has nothing to complain about


def test_fuzzed_entries_that_survive_validation_are_fresh_and_sane():
    entry = {"url": URLS["a"], "healthy": True, "checked_at": NOW, "models": [{"name": "m", "digest": 5}]}
    assert not state.health_entry_ok(entry)
    entry["models"][0]["digest"] = "d"
    assert state.health_entry_ok(entry) and state.is_current(entry, URLS["a"], NOW + 1)
    data, problem = state.validate({"version": 1, "breaker": {"a": {"ejected_until": NOW + 7200}}}, now=NOW)
    assert data["breaker"] == {} and "1 malformed entry" in problem
    assert time.time() < state.MAX_EPOCH
