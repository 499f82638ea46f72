"""The registry snapshot in the state dir: used only for the very same file, never holding a key."""

from __future__ import annotations

import os

from ollamactl.core.fleet import Fleet
from ollamactl.core.registry import instances as registry
from ollamactl.core.registry import snapshot as registry_snapshot
from ollamactl.core.state import marshal_cache


def age(path, seconds: float = 60.0) -> None:
    """Make a file look written `seconds` ago (a fresh file is not snapshotted: see RACY_S)."""
    stamp = os.stat(path).st_mtime - seconds
    os.utime(path, (stamp, stamp))


def snapshot_path(fleet: Fleet):
    return fleet.locations.state_dir / registry_snapshot.SNAPSHOT_NAME


def test_an_unchanged_registry_is_read_from_its_snapshot(fleet, monkeypatch):
    fleet.add("gpu1", name="one")
    fleet.add("gpu2", weight=3, type="chat")
    age(fleet.locations.registry)
    first = fleet.registry()
    assert snapshot_path(fleet).exists()
    parsed = registry.load(os.fspath(fleet.locations.registry))

    def no_parse(path):
        raise AssertionError(f"{path} parsed again: the snapshot was not used")

    monkeypatch.setattr(registry, "load", no_parse)
    assert fleet.registry() == first == parsed


def test_every_change_of_the_file_is_seen_at_once(fleet):
    fleet.add("gpu1", name="one")
    age(fleet.locations.registry)
    fleet.registry()
    fleet.add("gpu2")  # an edit through ollamactl
    assert [i.id for i in fleet.registry().instances] == ["gpu1-11434", "gpu2-11434"]
    age(fleet.locations.registry)
    fleet.registry()
    config = fleet.locations.registry
    config.write_text(config.read_text().replace('name = "one"', 'name = "uno"'))  # by hand, in place
    assert fleet.registry().find("uno").id == "gpu1-11434"


def test_a_fresh_file_is_not_snapshotted_and_a_broken_snapshot_is_ignored(fleet):
    fleet.add("gpu1")
    fleet.registry()
    assert not snapshot_path(fleet).exists()  # written just now: an edit in the same tick could hide
    age(fleet.locations.registry)
    fleet.registry()
    for junk in (b'{"format": 1, "key": "nope"', b"", b"\xff" * 40, marshal_cache.pack(((), 1, {}, ((1,),))),
                 "ragged"):
        if junk == "ragged":  # the right key, one column longer than the rest
            key, version, settings, columns = marshal_cache.unpack(snapshot_path(fleet).read_bytes())
            junk = marshal_cache.pack((key, version, settings, (columns[0] + columns[0],) + columns[1:]))
        snapshot_path(fleet).write_bytes(junk)
        assert [i.id for i in fleet.registry().instances] == ["gpu1-11434"]
        assert snapshot_path(fleet).read_bytes() != junk  # made again from the file (so "ragged" has the right key)


def test_a_registry_with_a_stored_key_is_never_snapshotted(fleet):
    fleet.add("gpu1", api_key="sk-snapshot-secret-1")
    age(fleet.locations.registry)
    assert fleet.registry().instances[0].api_key == "sk-snapshot-secret-1"
    assert not snapshot_path(fleet).exists()
