"""The pick memo (core/routing/pick_memo.py): a pick answered from it gives exactly the full path's answer,
for random fleets and states on real files, and it stops being used the moment anything it settled
changes: an entry ages, an ejection ends, the registry or the state is rewritten, another Python."""

from __future__ import annotations

import fcntl
import marshal
import os
import random
import re
import shutil
import subprocess
import sys
import time

import pytest
from test_pick import refused_url

from ollamactl.core.errors import OllamactlError
from ollamactl.core.fleet import Fleet
from ollamactl.core.health import background
from ollamactl.core.routing import pick_memo, selection
from ollamactl.core.routing import router as routing
from ollamactl.core.state import marshal_cache

MODELS = ("llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest")
ASKED = (None, None, "llama3.2", "qwen2.5:7b", "nomic-embed-text", "mistral")
STRATEGIES = (None, *selection.STRATEGIES, "quickest")  # "quickest": a usage error, from both paths


class Place:
    """A registry and a state dir of its own, with the background refresh lock held by this test
    (a stale pick then finds a refresh "under way" and starts none: no network, no rewrite)."""

    def __init__(self, root, name: str):
        self.dir = root / name
        self.config, self.state_dir = str(self.dir / "instances.toml"), str(self.dir / "state")
        os.makedirs(self.state_dir, exist_ok=True)
        self._lock = os.open(os.path.join(self.state_dir, background.LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def fleet(self, warnings: list[str]) -> Fleet:
        return Fleet(self.config, self.state_dir, warn=warnings.append)

    def age(self, seconds: float = 60.0) -> None:
        """Both files last written `seconds` ago (settled: a memo may be made of them)."""
        stamp = time.time() - seconds
        for path in (self.config, os.path.join(self.state_dir, "state.json")):
            os.utime(path, (stamp, stamp))

    def forget_view(self) -> None:
        """Remove the state view: of a settled state file, only the full path makes it again (the
        memo path reads no state; a warning's redaction may read the registry, never the state)."""
        view = os.path.join(self.state_dir, "state.view")
        if os.path.exists(view):  # a copied state file has none yet
            os.remove(view)

    def view_made(self) -> bool:
        return os.path.exists(os.path.join(self.state_dir, "state.view"))

    def memo_stands(self) -> bool:
        """Whether the state dir holds a memo for the registry and state files as they are now."""
        return pick_memo.load(self.state_dir, pick_memo.key_of(self.config, self.state_dir, "")) is not None

    def copy_to(self, other: Place) -> None:
        shutil.copy(self.config, other.config)
        shutil.copy(os.path.join(self.state_dir, "state.json"), os.path.join(other.state_dir, "state.json"))


def random_fleet(place: Place, rng: random.Random) -> str:
    """A registry of 1-25 fake hosts (types, tiers, weights, limits, some disabled) and a state whose
    every enabled instance has a usable entry (fresh or stale; none is probed), with ejections,
    leases and latencies, all at least 20 s away from any moment that changes an answer."""
    healthy_ttl, unhealthy_ttl = rng.choice((60, 300, 900)), rng.choice((30, 120, 600))
    stale_ttl = max(healthy_ttl, unhealthy_ttl) + rng.choice((120, 1200))
    fleet = place.fleet([])
    ids = []
    stale_share = rng.choice((0.0, 0.0, 0.3))  # a stale entry: the full path answers (and refreshes)
    for number in range(1, rng.randint(1, 25) + 1):
        ids.append(fleet.add(f"http://gpu{number}:11434", type=rng.choice(("both", "both", "chat", "embedding")),
                             weight=rng.randint(1, 4), enabled=rng.random() > 0.15,
                             priority=rng.choice((0, 0, 0, 1, -1, "backup")),
                             max_inflight=rng.choice((None, None, 1, 2))).id)
    strategy = rng.choice(STRATEGIES[1:-1])
    with open(place.config, "a") as handle:
        handle.write(f'\n[settings]\nstrategy = "{strategy}"\nhealth_ttl = {healthy_ttl}\n'
                     f"unhealthy_ttl = {unhealthy_ttl}\nstale_ttl = {stale_ttl}\n")
    instances = {i.id: i for i in fleet.instances()}
    now = time.time()

    def change(data: dict) -> None:
        for instance_id in ids:
            healthy = rng.random() > 0.2
            ttl = healthy_ttl if healthy else unhealthy_ttl
            age = rng.uniform(ttl + 20, stale_ttl - 20) if rng.random() < stale_share else rng.uniform(0, ttl - 20)
            if not instances[instance_id].enabled and rng.random() < 0.5:
                age = stale_ttl + 100  # too old: only a disabled instance may have one (nothing probes it)
            held = rng.sample(MODELS, rng.randint(0, 3))
            data["health"][instance_id] = {
                "url": instances[instance_id].url, "healthy": healthy, "error": None if healthy else "refused",
                "latency_ms": rng.choice((None, rng.uniform(1, 50))), "version": "0.12.6",
                "models": [{"name": m, "digest": "d" * 64, "size": 1} for m in held],
                "loaded": rng.sample(held, rng.randint(0, len(held))), "checked_at": now - age}
            if rng.random() < 0.2:
                data["breaker"][instance_id] = {"failures": 3, "ejections": 1,
                                                "ejected_until": now + rng.choice((-1, 1)) * rng.uniform(20, 600)}
            if rng.random() < 0.3:
                data["latency"][instance_id] = rng.uniform(1, 100)
            if rng.random() < 0.3:
                data["leases"][instance_id] = {f"h{n}": now + rng.choice((-1, 1)) * rng.uniform(20, 600)
                                               for n in range(rng.randint(1, 3))}
        data["health"]["gone-11434"] = dict(data["health"][ids[0]], url="http://gone:11434")  # not registered

    fleet.store.update(change)
    return strategy


def random_request(rng: random.Random) -> routing.Request:
    return routing.Request(request_type=rng.choice((None, None, "chat", "embedding")), model=rng.choice(ASKED),
                           strategy=rng.choice(STRATEGIES), key=rng.choice((None, None, None, "user-7")),
                           count=rng.randint(1, 3), strict=rng.random() < 0.2)


def answer(call):
    """(picks, or the error's type and words) of one pick."""
    try:
        return [i.id for i in call()]
    except OllamactlError as error:  # "checked 41 s ago" says when it is read: not part of the answer
        return type(error).__name__, re.sub(r"checked \d+ \w+ ago", "checked _ ago", str(error))


def full_answer(place: Place, request: routing.Request, said: list[str]):
    """`answer` of the full path (Fleet.select), and its decision (None after an error)."""
    decisions: list[routing.Decision] = []
    got = answer(lambda: decisions.append(place.fleet(said).select(request)) or decisions[0].picks)
    return got, (decisions or [None])[0]


@pytest.mark.parametrize("seed", range(40))
def test_a_pick_from_the_memo_answers_as_the_full_path(tmp_path, monkeypatch, seed):
    monkeypatch.setenv("OLLAMA_HOST", refused_url())  # the last-resort default answers nothing
    rng = random.Random(seed)
    full, fast = Place(tmp_path, "full"), Place(tmp_path, "fast")
    default = random_fleet(full, rng)
    full.copy_to(fast)
    for _ in range(8):
        request = random_request(rng)
        strategy = request.strategy or default
        for place in (full, fast):
            place.age()  # a weighted pick rewrote the state: settle it again
        said_full: list[str] = []
        said_fast: list[str] = []
        for attempt in range(2):  # the first fast pick makes the memo for the request's shape, the second uses it
            fast.forget_view()
            expected, decision = full_answer(full, request, said_full)
            got = answer(lambda: fast.fleet(said_fast).picks(request))  # noqa: B023
            if strategy == "random" and request.key is None and decision is not None:
                candidates = {i.id for i in decision.candidates}  # os.urandom chooses among them
                assert len(got) == len(expected) and set(got) <= candidates, (seed, request)
            else:
                assert got == expected, (seed, request)
            if attempt and expected[0] != "UsageError":  # (a usage error: neither path reads the state)
                # from the memo exactly when the full path chose from fresh entries without writing the state
                from_memo = (decision is not None and decision.lookup is not None and not decision.lookup.stale
                             and (strategy not in ("weighted", "fastest") or request.key is not None))
                assert fast.view_made() != from_memo, (seed, request)
        assert said_fast == said_full, (seed, request)


def two_instances(place: Place, *, ttl: float = 3600.0, first: str = "http://gpu1:11434") -> list[str]:
    """`first` and gpu2 (round-robin), healthy and fresh for `ttl` s, registered through the API."""
    fleet = place.fleet([])
    urls = [first, "http://gpu2:11434"]
    ids = [fleet.add(url).id for url in urls]
    with open(place.config, "a") as handle:
        handle.write(f"\n[settings]\nhealth_ttl = {ttl}\nunhealthy_ttl = {ttl}\nstale_ttl = {ttl}\n")
    for instance in fleet.instances():
        set_health(place, instance.id, instance.url, time.time())
    return ids


def set_health(place: Place, instance_id: str, url: str, checked_at: float, **fields) -> None:
    entry = dict({"url": url, "healthy": True, "error": None, "latency_ms": 1.0, "version": "0.12.6",
                  "models": [], "loaded": [], "checked_at": checked_at}, **fields)
    place.fleet([]).store.update(lambda data: data["health"].update({instance_id: entry}))


def picks(place: Place, count: int = 4, warnings: list[str] | None = None) -> list[str]:
    return [i.id for _ in range(count) for i in place.fleet([] if warnings is None else warnings).pick()]


def memo_used(place: Place) -> bool:
    """One pick, and whether it came from the memo (see Place.forget_view: the state is settled)."""
    place.forget_view()
    picks(place, 1)
    return not place.view_made()


def test_the_memo_is_made_once_settled_and_used_from_then_on(tmp_path):
    place = Place(tmp_path, "p")
    two_instances(place)
    ahead = time.time() + 30  # "just written" however slowly this test runs: no memo in a file's first RACY_S
    os.utime(place.config, (ahead, ahead))
    picks(place, 1)
    assert not place.memo_stands()
    place.age()
    picks(place, 1)
    assert place.memo_stands()
    assert memo_used(place) and memo_used(place)
    assert picks(place) == ["gpu1-11434", "gpu2-11434"] * 2  # the one shared rotation goes on


def test_an_entry_that_ages_past_its_ttl_ends_the_memo(tmp_path, fake_clock):
    place = Place(tmp_path, "p")
    refused = f"http://{refused_url()}"
    ids = two_instances(place, ttl=30.0, first=refused)
    set_health(place, ids[0], refused, time.time() - 25.0)  # too old in 5 s: probed then (and refused)
    place.age()
    picks(place, 1)
    assert memo_used(place) and sorted(set(picks(place))) == sorted(ids)
    fake_clock.advance(5.1)
    assert set(picks(place)) == {ids[1]}
    assert place.fleet([]).store.read()["health"][ids[0]]["healthy"] is False  # the probe's answer


def test_an_ejection_that_ends_ends_the_memo(tmp_path, fake_clock):
    place = Place(tmp_path, "p")
    ids = two_instances(place)
    place.fleet([]).store.update(lambda data: data["breaker"].update(
        {ids[0]: {"failures": 3, "ejections": 1, "ejected_until": time.time() + 5.0}}))
    place.age()
    picks(place, 1)
    assert memo_used(place) and set(picks(place)) == {ids[1]}  # gpu1 ejected
    fake_clock.advance(5.1)
    assert set(picks(place)) == set(ids)  # back in the rotation
    assert memo_used(place)  # a memo for the span after the ejection


def test_a_lease_that_expires_ends_the_memo(tmp_path, fake_clock):
    place = Place(tmp_path, "p")
    ids = two_instances(place)
    place.fleet([]).update(ids[0], max_inflight=1)
    place.fleet([]).store.update(lambda data: data["leases"].update({ids[0]: {"run-1": time.time() + 5.0}}))
    place.age()
    picks(place, 1)
    assert memo_used(place) and set(picks(place)) == {ids[1]}  # gpu1 is at its max_inflight
    fake_clock.advance(5.1)
    assert set(picks(place)) == set(ids)


def memoized(tmp_path) -> tuple[Place, list[str]]:
    """gpu1 and gpu2 in settled files, and the memo of them made and in use."""
    place = Place(tmp_path, "p")
    ids = two_instances(place)
    place.age()
    picks(place, 1)
    assert memo_used(place)
    return place, ids


def test_an_edited_registry_ends_the_memo(tmp_path):
    place, ids = memoized(tmp_path)
    place.fleet([]).disable(ids[0])
    assert set(picks(place)) == {ids[1]}  # at once, settled or not
    place.age()
    assert set(picks(place)) == {ids[1]} and memo_used(place)  # a new memo, of the new registry


def test_a_rewritten_state_ends_the_memo(tmp_path):
    place, ids = memoized(tmp_path)
    set_health(place, ids[0], "http://gpu1:11434", time.time(), healthy=False, error="refused")
    assert not place.memo_stands()
    assert set(picks(place)) == {ids[1]}
    assert place.memo_stands()  # the state came from the view its writer left: a memo of it at once
    assert set(picks(place)) == {ids[1]}


def test_a_memo_of_another_python_or_format_is_not_used(tmp_path):
    place, _ = memoized(tmp_path)
    path = os.path.join(place.state_dir, pick_memo.NAME)
    for position, other in ((1, "2.7.18 (another python)"), (0, pick_memo.FORMAT + 1)):
        with open(path, "rb") as handle:
            key, strategy, entries = marshal_cache.unpack(handle.read())
        with open(path, "wb") as handle:
            handle.write(marshal_cache.pack((key[:position] + (other,) + key[position + 1:], strategy, entries)))
        assert not memo_used(place)  # the full path answers, and makes the memo again
        assert memo_used(place)


@pytest.mark.parametrize("junk", [b"", b"\x00garbage", marshal_cache.pack((1, 2)), "truncate", "entry"])
def test_a_broken_memo_is_ignored(tmp_path, junk):
    place = Place(tmp_path, "p")
    ids = two_instances(place)
    place.age()
    picks(place, 1)
    path = os.path.join(place.state_dir, pick_memo.NAME)
    with open(path, "rb") as handle:
        data = handle.read()
    if junk == "truncate":
        junk = data[:-30]
    elif junk == "entry":  # the right key, an entry of the wrong shape
        key, strategy, entries = marshal_cache.unpack(data)
        junk = marshal_cache.pack((key, strategy, {shape: marshal.dumps((1.0, 2.0)) for shape in entries}))
    with open(path, "wb") as handle:
        handle.write(junk)
    assert not memo_used(place)  # the full path answers, and makes the memo again
    assert memo_used(place) and sorted(set(picks(place))) == sorted(ids)


def test_a_broken_state_warns_on_every_pick_and_keeps_the_full_path(tmp_path):
    place = Place(tmp_path, "p")
    two_instances(place)
    place.fleet([]).store.update(lambda data: data["latency"].update({"gpu1-11434": 5.0}))
    state_file = os.path.join(place.state_dir, "state.json")
    with open(state_file) as handle:
        text = handle.read().replace('"gpu1-11434":5.0', '"gpu1-11434":"slow"')
    with open(state_file, "w") as handle:
        handle.write(text)
    place.age()
    for _ in range(3):
        warnings: list[str] = []
        picks(place, 1, warnings)
        assert len(warnings) == 1 and "1 malformed entry" in warnings[0]
    assert not os.path.exists(os.path.join(place.state_dir, pick_memo.NAME))


def test_a_model_missing_everywhere_is_warned_from_the_memo_too(tmp_path):
    place = Place(tmp_path, "p")
    two_instances(place)
    place.age()
    for _ in range(3):
        warnings: list[str] = []
        assert len(place.fleet(warnings).pick(model="mistral")) == 1
        assert warnings == ["model mistral:latest is on no healthy instance; picking any eligible instance"]
    place.forget_view()
    place.fleet([]).pick(model="mistral")
    assert not place.view_made()


def test_a_pick_from_entries_turned_stale_takes_the_full_path_and_starts_the_refresh(tmp_path, sim):
    """Stale-while-revalidate: the memo of fresh entries ends when they turn stale; the pick then
    answers from them the full way and starts the one background refresh."""
    up = sim.add()
    env = dict(os.environ, OLLAMACTL_CONFIG=str(tmp_path / "instances.toml"), OLLAMACTL_STATE_DIR=str(tmp_path / "s"))
    fleet = Fleet(env["OLLAMACTL_CONFIG"], env["OLLAMACTL_STATE_DIR"])
    instance = fleet.add(up.url)
    with open(env["OLLAMACTL_CONFIG"], "a") as handle:
        handle.write("\n[settings]\nhealth_ttl = 6\nstale_ttl = 3600\n")
    os.utime(env["OLLAMACTL_CONFIG"], (time.time() - 60,) * 2)
    fleet.probe([instance])  # fresh for 6 s
    checked = fleet.store.read()["health"][instance.id]["checked_at"]

    def pick() -> set[str]:
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ollamactl", "pick"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.stdout == f"{up.url}\n", done.stderr
        return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}

    pick()  # makes the memo
    assert "ollamactl.core.state.view" not in pick()  # answered from it
    time.sleep(max(0.0, checked + 6.1 - time.time()))
    assert "ollamactl.core.state.view" in pick()  # stale: the full path, and the refresh at its exit
    deadline = time.time() + 30
    while Fleet(env["OLLAMACTL_CONFIG"], env["OLLAMACTL_STATE_DIR"]).store.read()["health"][instance.id][
            "checked_at"] == checked:
        assert time.time() < deadline, "the stale pick started no refresh"
        time.sleep(0.05)
    while background.is_running(env["OLLAMACTL_STATE_DIR"]):
        time.sleep(0.05)
