"""The state view (core/state/view.py): the checked state kept beside the state file, used only for
the very same file, never trusted when broken, and giving the same answers and warnings as the file."""

from __future__ import annotations

import json
import os
import time

import pytest

from ollamactl.core.state import marshal_cache
from ollamactl.core.state import view as state_view
from ollamactl.core.state.store import FileStore

ENTRY = {"url": "http://gpu1:11434", "healthy": True, "error": None, "latency_ms": 1.0, "version": "0.12.6",
         "models": [{"name": "llama3.2:latest", "digest": "d" * 64, "size": 1}], "loaded": [], "checked_at": 0.0}


def view_of(store: FileStore):
    """The view that stands for the state file as it is now, or None."""
    return state_view.load(store.state_dir, state_view.key_of(os.stat(store.path)))


def age(path, seconds: float = 60.0) -> None:
    stamp = os.stat(path).st_mtime - seconds
    os.utime(path, (stamp, stamp))


def write_by_hand(store: FileStore, data) -> None:
    os.makedirs(store.state_dir, exist_ok=True)
    with open(store.path, "w") as handle:
        handle.write(json.dumps(data))


def test_a_write_through_the_store_leaves_the_view_of_what_it_wrote(tmp_path):
    store = FileStore(tmp_path)
    store.update(lambda data: data["health"].update(gpu1=dict(ENTRY, checked_at=time.time())))
    viewed, problem = view_of(store)
    with open(store.path) as handle:
        assert viewed == json.load(handle) and problem is None
    assert store.read() == viewed


def test_a_file_edited_by_hand_is_read_from_the_file_and_viewed_once_settled(tmp_path):
    store = FileStore(tmp_path)
    store.update(lambda data: data["health"].update(gpu1=dict(ENTRY, checked_at=time.time())))
    write_by_hand(store, {"version": 1, "health": {"gpu2": dict(ENTRY, url="http://gpu2:11434")}})
    assert list(store.read()["health"]) == ["gpu2"]  # the old view is not this file's
    assert view_of(store) is None  # just written: an edit in the same clock tick could hide behind a view
    age(store.path)
    assert list(store.read()["health"]) == ["gpu2"] and list(view_of(store)[0]["health"]) == ["gpu2"]


def test_a_broken_state_warns_on_every_read_from_its_view_too(tmp_path):
    store = FileStore(tmp_path)
    write_by_hand(store, {"version": 1, "health": {"gpu1": ENTRY, "gpu2": "junk"}, "latency": {"gpu1": "slow"}})
    age(store.path)
    for _ in range(3):
        warnings: list[str] = []
        data = FileStore(tmp_path, warnings.append).read()
        assert len(warnings) == 1 and "1 malformed entry" in warnings[0]
        assert data["latency"] == {}
    health = view_of(store)[0]["health"]
    assert list(health) == ["gpu1", "gpu2"] and health.malformed == {"gpu2"}  # kept as the file has it, marked


@pytest.mark.parametrize("junk", [b"", b"\x00garbage{", b"\xff" * 64, marshal_cache.pack([1, 2, 3]),
                                  marshal_cache.pack((("wrong", "key"), {}, None, frozenset())), "truncate"])
def test_a_broken_view_is_ignored_and_rebuilt(tmp_path, junk):
    store = FileStore(tmp_path)
    write_by_hand(store, {"version": 1, "health": {"gpu1": ENTRY}})
    age(store.path)
    assert store.read()["health"] == {"gpu1": ENTRY}
    view = os.path.join(store.state_dir, state_view.NAME)
    if junk == "truncate":
        with open(view, "rb") as handle:
            junk = handle.read()[:-20]
    with open(view, "wb") as handle:
        handle.write(junk)
    warnings: list[str] = []
    assert FileStore(tmp_path, warnings.append).read()["health"] == {"gpu1": ENTRY} and warnings == []
    assert view_of(store) is not None  # made again from the file


def test_a_view_with_the_right_key_but_a_state_of_the_wrong_shape_is_not_used(tmp_path):
    store = FileStore(tmp_path)
    write_by_hand(store, {"version": 1, "health": {"gpu1": ENTRY}})
    age(store.path)
    key = state_view.key_of(os.stat(store.path))
    for shape in ({"version": 2}, {"version": 1, "health": []}, [], {"version": 1, "breaker": {"a": 5}}):
        with open(os.path.join(store.state_dir, state_view.NAME), "wb") as handle:
            handle.write(marshal_cache.pack((key, shape, None, frozenset())))
        assert store.read()["health"] == {"gpu1": ENTRY}, shape
