"""Registry edits parse only the instance tables they touch (issue 11, point 7): the file they write
is byte for byte the one a whole-file edit writes, for every kind of edit and layout."""

from __future__ import annotations

import pytest

from ollamactl.core.fleet import Fleet
from ollamactl.core.registry import regions as registry_regions

LAYOUTS = {
    "plain": """version = 1

[[instances]]
id = "a"
url = "http://127.0.0.1:1"

[[instances]]
id = "b"
url = "http://127.0.0.1:2"
weight = 2

[[instances]]
id = "c"
url = "http://127.0.0.1:3"
""",
    "commented": """# my fleet
version = 1  # schema

[settings]
timeout = 2.0

# the first box
[[instances]]
id = "a"   # short
url = "http://127.0.0.1:1"
my_note = "kept"

# --- b, the big one ---

[[instances]]  # header comment
id = "b"
url = "http://127.0.0.1:2"
# a comment inside b
weight = 2

[[instances]]
id = "c"
url = "http://127.0.0.1:3"
# trailing comment at the end of the file
""",
    "settings after": """version = 1

[[instances]]
id = "a"
url = "http://127.0.0.1:1"

[[instances]]
id = "b"
url = "http://127.0.0.1:2"

[[instances]]
id = "c"
url = "http://127.0.0.1:3"

[settings]
timeout = 3.0
""",
}

EDITS = {
    "update b": lambda fleet: fleet.update("b", weight=5, name="Bee"),
    "disable a and c": lambda fleet: fleet.disable("a", "c"),
    "remove b": lambda fleet: fleet.remove("b"),
    "remove a": lambda fleet: fleet.remove("a"),
    "remove c": lambda fleet: fleet.remove("c"),
    "add": lambda fleet: fleet.add("127.0.0.1:4", name="d"),
    "key for c": lambda fleet: fleet.update("c", api_key_env="C_KEY"),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_a_region_edit_writes_what_a_whole_file_edit_writes(tmp_path, monkeypatch, layout, edit):
    import datetime as dt

    from ollamactl.core.registry import instances as registry

    stamp = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)

    def written(use_regions: bool) -> bytes:
        config = tmp_path / ("regions" if use_regions else "whole") / "instances.toml"
        config.parent.mkdir()
        config.write_text(LAYOUTS[layout])
        monkeypatch.setattr(registry, "now_utc", lambda: stamp)
        if not use_regions:
            monkeypatch.setattr(registry_regions, "find", lambda *args: None)
        EDITS[edit](Fleet(config=config, state_dir=tmp_path / "state"))
        monkeypatch.undo()
        return config.read_bytes()

    found = []
    real_find = registry_regions.find
    monkeypatch.setattr(registry_regions, "find", lambda *args: found.append(real_find(*args)) or found[-1])
    by_region = written(True)
    assert by_region == written(False)
    if edit in ("update b", "remove b", "key for c") or (layout == "plain" and edit != "remove a"):
        assert found and found[0] is not None  # the fast path was taken


def test_a_region_that_is_not_plain_falls_back_to_the_whole_file():
    text = 'version = 1\n\n[[instances]]\nid = "a"\nurl = "http://h:1"\n\n[instances.extra]\nx = 1\n'
    data = {"version": 1, "instances": [{"id": "a", "url": "http://h:1", "extra": {"x": 1}}]}
    assert registry_regions.find(text, data, (0, 1, False)) is None
    multiline = 'version = 1\nnote = """\n[[instances]]\n"""\n\n[[instances]]\nid = "a"\nurl = "http://h:1"\n'
    data = {"version": 1, "note": "[[instances]]\n", "instances": [{"id": "a", "url": "http://h:1"}]}
    assert registry_regions.find(multiline, data, (0, 1, False)) is None
