"""Pure selection logic: filters, fallbacks, strategies, stickiness and the breaker rules."""

from collections import Counter

import pytest

from ollamactl.core.fleet import Fleet
from ollamactl.core.health import breaker
from ollamactl.core.registry.instances import Instance
from ollamactl.core.routing import selection

NOW = 1_000_000.0


def inst(instance_id, kind="both", enabled=True, weight=1):
    return Instance(id=instance_id, name=instance_id, url=f"http://{instance_id}:11434", type=kind,
                    enabled=enabled, weight=weight)


def healthy(*models, loaded=(), latency=10.0):
    return {"healthy": True, "error": None, "latency_ms": latency, "loaded": list(loaded),
            "models": [{"name": m, "digest": "d" * 64, "size": 1} for m in models]}


def sick(error):
    return {"healthy": False, "error": error, "models": [], "loaded": None}


@pytest.mark.parametrize("typed, stored", [
    ("llama3.2", "llama3.2:latest"),
    ("llama3.2:latest", "llama3.2:latest"),
    ("library/llama3.2", "llama3.2:latest"),
    ("registry.ollama.ai/library/llama3.2:3b", "llama3.2:3b"),
    ("user/model", "user/model:latest"),
    ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:Q4_K_M"),
    ("localhost:5000/model", "localhost:5000/model:latest"),
])
def test_model_names_are_normalised_like_ollama(typed, stored):
    assert selection.normalise_model(typed) == stored


SCREEN_CASES = [
    # (description, instances, health, breaker, type, model, strict, candidates, dropped-reason substrings)
    ("disabled dropped", [inst("a"), inst("b", enabled=False)], {"a": healthy(), "b": healthy()}, {},
     None, None, False, ["a"], {"b": "disabled"}),
    ("embedding instance never serves chat", [inst("a", "embedding"), inst("b", "chat"), inst("c")],
     {k: healthy() for k in "abc"}, {}, "chat", None, False, ["b", "c"], {"a": "wrong type"}),
    ("chat instance never serves embedding", [inst("a", "embedding"), inst("b", "chat")],
     {k: healthy() for k in "ab"}, {}, "embedding", None, False, ["a"], {"b": "wrong type"}),
    ("unhealthy dropped with its error", [inst("a"), inst("b")], {"a": healthy(), "b": sick("connection refused")},
     {}, None, None, False, ["a"], {"b": "unhealthy: connection refused"}),
    ("never checked is unhealthy", [inst("a"), inst("b")], {"a": healthy()}, {}, None, None, False, ["a"],
     {"b": "not checked"}),
    ("model filter with normalisation", [inst("a"), inst("b")],
     {"a": healthy("llama3.2:latest"), "b": healthy("qwen2.5:7b")}, {}, None, "llama3.2", False, ["a"],
     {"b": "no model llama3.2:latest"}),
    ("model found nowhere: any eligible", [inst("a"), inst("b")], {"a": healthy("x:latest"), "b": healthy()},
     {}, None, "llama3.2", False, ["a", "b"], {}),
    ("model found nowhere, strict: none", [inst("a")], {"a": healthy("x:latest")}, {}, None, "llama3.2", True,
     [], {"a": "no model"}),
    ("ejected dropped", [inst("a"), inst("b")], {"a": healthy(), "b": healthy()},
     {"b": {"ejected_until": NOW + 30}}, None, None, False, ["a"], {"b": "ejected until"}),
    ("ejection over", [inst("a"), inst("b")], {"a": healthy(), "b": healthy()},
     {"b": {"ejected_until": NOW - 1}}, None, None, False, ["a", "b"], {}),
    ("all ejected: panic mode keeps them", [inst("a"), inst("b")], {"a": healthy(), "b": healthy()},
     {"a": {"ejected_until": NOW + 5}, "b": {"ejected_until": NOW + 5}}, None, None, False, ["a", "b"], {}),
]


@pytest.mark.parametrize("case", SCREEN_CASES, ids=[c[0] for c in SCREEN_CASES])
def test_screen(case):
    _, instances, health, breaker_state, kind, model, strict, expected, reasons = case
    result = selection.screen(instances, kind, model, health, breaker_state, NOW, strict=strict)
    assert [i.id for i in result.candidates] == expected
    for instance_id, words in reasons.items():
        assert words in result.dropped[instance_id]


def test_missing_model_and_panic_mode_warn():
    instances = [inst("a")]
    missing = selection.screen(instances, None, "nope", {"a": healthy("x:latest")}, {}, NOW)
    assert missing.model_missing and "nope:latest" in missing.warnings[0]
    panic = selection.screen(instances, None, None, {"a": healthy()}, {"a": {"ejected_until": NOW + 9}}, NOW)
    assert "ejected" in panic.warnings[0]


def test_round_robin_rotates_and_persists_the_cursor():
    candidates = [inst("a"), inst("b"), inst("c")]
    picks, updates = selection.choose("round-robin", candidates, 4, positions={"cursors": {}})
    assert [i.id for i in picks] == ["a", "b", "c", "a"]
    picks, _ = selection.choose("round-robin", candidates, 2, positions=updates)
    assert [i.id for i in picks] == ["b", "c"]


def test_round_robin_pools_are_separate_per_type_and_model():
    candidates = [inst("a"), inst("b")]
    _, chat = selection.choose("round-robin", candidates, 1, request_type="chat", model="m", positions={})
    _, embed = selection.choose("round-robin", candidates, 1, request_type="embedding", model="m", positions={})
    assert chat["cursors"].keys() != embed["cursors"].keys()
    assert selection.pool_key("chat", "m", "round-robin") == selection.pool_key("chat", "m:latest", "round-robin")


def test_weighted_is_smooth_and_proportional():
    candidates = [inst("a", weight=5), inst("b"), inst("c")]
    picks, _ = selection.choose("weighted", candidates, 7, positions={})
    assert [i.id for i in picks] == ["a", "a", "b", "a", "c", "a", "a"]
    many, _ = selection.choose("weighted", [inst("x", weight=3), inst("y", weight=1)], 400, positions={})
    assert Counter(i.id for i in many) == {"x": 300, "y": 100}


def test_weighted_continues_from_persisted_weights():
    candidates = [inst("a", weight=2), inst("b")]
    first, updates = selection.choose("weighted", candidates, 2, positions={})
    second, _ = selection.choose("weighted", candidates, 1, positions={"weights": updates["weights"]})
    assert [i.id for i in first + second] == ["a", "b", "a"]


def test_least_latency_prefers_recent_request_latency_over_probe_latency():
    candidates = [inst("a"), inst("b")]
    health = {"a": healthy(latency=5.0), "b": healthy(latency=50.0)}
    picks, _ = selection.choose("least-latency", candidates, 1, signals=selection.Signals(health, latency={}))
    assert picks[0].id == "a"
    picks, _ = selection.choose("least-latency", candidates, 1,
                                signals=selection.Signals(health, latency={"a": 900.0, "b": 20.0}))
    assert picks[0].id == "b"


def test_random_uses_the_given_entropy_and_reaches_every_candidate():
    candidates = [inst("a"), inst("b"), inst("c")]
    entropy = b"".join(i.to_bytes(4, "big") for i in (0, 1, 2, 5))
    picks, updates = selection.choose("random", candidates, 4, entropy=entropy)
    assert [i.id for i in picks] == ["a", "b", "c", "c"] and updates == {}


def test_warm_prefers_instances_with_the_model_loaded_and_rotates_among_them():
    candidates = [inst("a"), inst("b"), inst("c")]
    health = {"a": healthy("m:latest"), "b": healthy("m:latest", loaded=["m:latest"]),
              "c": healthy("m:latest", loaded=["m:latest"])}
    picks, _ = selection.choose("warm", candidates, 4, model="m", signals=selection.Signals(health), positions={})
    assert [i.id for i in picks] == ["b", "c", "b", "c"]
    cold, _ = selection.choose("warm", candidates, 2, model="other", signals=selection.Signals(health), positions={})
    assert [i.id for i in cold] == ["a", "b"]


def test_key_is_sticky_and_losing_an_instance_moves_only_its_keys():
    fleet = [inst(f"gpu{i}") for i in range(5)]
    keys = [f"user-{n}" for n in range(500)]

    def owner(candidates, key):
        return selection.choose("round-robin", candidates, 1, key=key, positions={})[0][0].id

    before = {key: owner(fleet, key) for key in keys}
    assert before == {key: owner(fleet, key) for key in keys}  # stable
    assert len(set(before.values())) == 5  # spread over every instance
    survivors = [i for i in fleet if i.id != "gpu2"]
    after = {key: owner(survivors, key) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert moved and all(before[key] == "gpu2" for key in moved)


def test_key_respects_weights():
    fleet = [inst("big", weight=3), inst("small", weight=1)]
    owners = Counter(selection.rendezvous(fleet, f"k{n}")[0].id for n in range(4000))
    assert 0.68 < owners["big"] / 4000 < 0.82


def test_breaker_ejects_after_three_failures_with_growing_then_capped_time():
    entry = None
    for _ in range(2):
        entry = breaker.after_failure(entry, NOW)
    assert selection.ejected_until(entry, NOW) is None
    entry = breaker.after_failure(entry, NOW)
    assert selection.ejected_until(entry, NOW) == NOW + 30
    assert selection.ejected_until(entry, NOW + 31) is None  # re-admitted after 30 s
    for _ in range(3):
        entry = breaker.after_failure(entry, NOW + 31)
    assert entry["ejected_until"] == NOW + 31 + 60  # second ejection: 2 x 30 s
    for _ in range(30):
        entry = breaker.after_failure(entry, NOW)
    assert entry["ejected_until"] == NOW + 300  # capped at 5 minutes
    assert selection.ejected_until(breaker.after_success(), NOW) is None


def test_breaker_record_ejects_in_the_state_file_and_screen_honours_it(isolated_env):

    for _ in range(3):
        breaker.record(Fleet().store, "a", ok=False, now=NOW)
    data = Fleet().store.read()
    result = selection.screen([inst("a"), inst("b")], None, None, {"a": healthy(), "b": healthy()},
                              data["breaker"], NOW + 1)
    assert [i.id for i in result.candidates] == ["b"]
    breaker.record(Fleet().store, "a", ok=True, latency_ms=40.0, now=NOW + 2)
    data = Fleet().store.read()
    assert selection.ejected_until(data["breaker"]["a"], NOW + 3) is None
    assert data["latency"]["a"] == 40.0
