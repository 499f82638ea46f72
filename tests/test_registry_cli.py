"""The registry commands through the real CLI: add/list/update/enable/disable/remove/paths.

Messages go to stderr and data to stdout, so every check looks at the stream a user or a script
would read. Bad input must leave the registry byte-for-byte as it was.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys

import pytest
from cli_helpers import ok, one_error_line, run

from ollamactl import __version__

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PUBLIC_KEYS = {"id", "name", "url", "type", "enabled", "weight", "priority", "max_inflight", "auth", "created_at"}
SECRET = "sk-test-5ecr3t-9f8e7d6c"


def listing() -> list[dict]:
    return json.loads(ok("list", "--json").stdout)


def by_id() -> dict[str, dict]:
    return {item["id"]: item for item in listing()}


@pytest.fixture
def config(isolated_env):
    return isolated_env["config"]


# --- 1. the full cycle ---------------------------------------------------------------------------

def test_full_cycle_add_list_update_enable_disable_remove(config):
    added = ok("add", "gpu1")
    assert added.stdout == "gpu1-11434\n"  # the id, alone on stdout: `id=$(ollamactl add gpu1)`

    [entry] = listing()
    assert set(entry) == PUBLIC_KEYS
    assert entry["id"] == entry["name"] == "gpu1-11434"
    assert entry["url"] == "http://gpu1:11434"
    assert (entry["type"], entry["weight"], entry["enabled"], entry["auth"]) == ("both", 1, True, "none")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["created_at"]), entry["created_at"]

    table = ok("list")
    assert "gpu1-11434" in table.stdout and "http://gpu1:11434" in table.stdout

    updated = ok("update", "gpu1-11434", "--name", "GPU box 1", "--type", "chat", "--weight", "3")
    assert updated.stdout == ""
    assert "gpu1-11434" in updated.stderr
    entry = by_id()["gpu1-11434"]
    assert (entry["name"], entry["type"], entry["weight"]) == ("GPU box 1", "chat", 3)

    ok("disable", "GPU box 1")  # by name
    assert by_id()["gpu1-11434"]["enabled"] is False
    ok("enable", "gpu1-11434")  # by id
    assert by_id()["gpu1-11434"]["enabled"] is True
    ok("update", "GPU box 1", "--disable")
    assert by_id()["gpu1-11434"]["enabled"] is False
    ok("update", "GPU box 1", "--enable", "--url", "gpu1:8080")
    entry = by_id()["gpu1-11434"]
    assert entry["enabled"] is True and entry["url"] == "http://gpu1:8080"

    removed = ok("remove", "GPU box 1", "--yes")
    assert "gpu1-11434" in removed.stderr
    assert listing() == []


def test_add_with_every_option_and_disabled():
    ok("add", "gpu2", "--name", "Embedder", "--id", "emb", "--type", "embedding", "--weight", "5", "--disabled")
    entry = by_id()["emb"]
    assert entry == {**entry, "name": "Embedder", "url": "http://gpu2:11434", "type": "embedding",
                     "weight": 5, "enabled": False, "auth": "none"}


@pytest.mark.parametrize(
    ("url", "expected_id"),
    [("gpu1", "gpu1-11434"), ("gpu1:8080", "gpu1-8080"), ("https://host/prefix", "host-443-prefix"),
     ("http://10.0.0.7:11434", "10-0-0-7-11434"), ("[::1]:11434", "ipv6-1-11434")],
)
def test_id_is_derived_from_host_port_and_path(url, expected_id):
    assert ok("add", url).stdout == f"{expected_id}\n"
    assert by_id()[expected_id]["name"] == expected_id


def test_prefix_is_part_of_the_id_so_two_prefixes_on_one_host_coexist():
    first = ok("add", "https://host/prefix").stdout.strip()
    second = ok("add", "https://host/other").stdout.strip()
    assert "prefix" in first and "other" in second and first != second


def test_derived_id_gets_a_numeric_suffix_when_taken():
    # same host, another port, but named like the id gpu1 would get
    ok("add", "gpu1:8080", "--name", "gpu1-11434")
    assert ok("add", "gpu1").stdout == "gpu1-11434-2\n"
    # an explicit id that another URL would derive
    ok("add", "gpu7", "--id", "gpu2-11434")
    assert ok("add", "gpu2").stdout == "gpu2-11434-2\n"
    assert ok("add", "gpu2:9999", "--id", "gpu2-11434-3").stdout == "gpu2-11434-3\n"
    assert set(by_id()) == {"gpu1-8080", "gpu1-11434-2", "gpu2-11434", "gpu2-11434-2", "gpu2-11434-3"}


def test_update_and_lookups_accept_id_or_name():
    ok("add", "gpu1", "--name", "alpha")
    ok("add", "gpu2", "--name", "beta")
    ok("update", "alpha", "--weight", "4")
    ok("update", "gpu2-11434", "--weight", "6")
    ok("disable", "alpha", "gpu2-11434")
    items = by_id()
    assert (items["gpu1-11434"]["weight"], items["gpu2-11434"]["weight"]) == (4, 6)
    assert not items["gpu1-11434"]["enabled"] and not items["gpu2-11434"]["enabled"]
    ok("enable", "beta")
    assert by_id()["gpu2-11434"]["enabled"] and not by_id()["gpu1-11434"]["enabled"]


def test_list_json_auth_forms():
    ok("add", "gpu1")
    ok("add", "gpu2", "--api-key-env", "GPU2_KEY")
    ok("add", "gpu3", "--api-key-stdin", input=SECRET + "\n")
    items = listing()
    assert all(set(item) == PUBLIC_KEYS for item in items)
    assert [item["auth"] for item in items] == ["none", "env:GPU2_KEY", "stored"]
    table = ok("list").stdout
    assert "env:GPU2_KEY" in table and "stored" in table


def test_empty_registry_lists_nothing_and_names_the_default_instance():
    result = ok("list", "--json")
    assert json.loads(result.stdout) == []
    assert "http://127.0.0.1:11434" in result.stderr
    table = ok("list")
    assert "http://127.0.0.1:11434" in table.stderr and "http" not in table.stdout


def test_empty_registry_note_follows_ollama_host(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu9")
    result = ok("list", "--json")
    assert result.stdout.strip() == "[]"
    assert "http://gpu9:11434" in result.stderr and "127.0.0.1" not in result.stderr.split("(")[0]


# --- 2. URL forms, as stored ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("gpu1", "http://gpu1:11434"),
        ("gpu1:8080", "http://gpu1:8080"),
        ("http://gpu1:11434", "http://gpu1:11434"),
        ("HTTP://GPU1:11434/", "http://gpu1:11434"),
        ("https://host/prefix", "https://host:443/prefix"),
        ("https://host/prefix/", "https://host:443/prefix"),
        ("http://host", "http://host:80"),
        ("[::1]:11434", "http://[::1]:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("  gpu1  ", "http://gpu1:11434"),
    ],
)
def test_url_forms_are_normalised_on_add(given, stored):
    ok("add", given)
    assert [item["url"] for item in listing()] == [stored]


def test_update_url_is_normalised_too():
    ok("add", "gpu1")
    ok("update", "gpu1-11434", "--url", "https://gpu1")
    assert by_id()["gpu1-11434"]["url"] == "https://gpu1:443"


# --- 3. bad input: exit 2, one line naming the value, file untouched -------------------------------

@pytest.fixture
def two_instances(config):
    ok("add", "gpu1", "--name", "box")
    ok("add", "gpu3")
    return config.read_bytes()


BAD_INPUT = [
    # a field the registry refuses is named by its flag, as every other error names it
    (["add", "gpu2", "--type", "gpu"], None, "error: --type must be one of chat, embedding, both, got 'gpu'"),
    (["update", "box", "--type", "gpu"], None, "error: --type must be one of"),
    (["add", "gpu2", "--weight", "0"], None, "error: --weight must be a whole number from 1 to 1000, got 0"),
    (["update", "box", "--priority", "x"], None, "error: --priority 'x' is not a whole number"),
    (["add", "gpu2", "--max-inflight", "200000"], None, "error: --max-inflight 200000 is not a whole number"),
    (["add", "gpu2", "--weight", "-1"], None, "got -1"),
    (["update", "box", "--weight", "0"], None, "got 0"),
    (["add", "gpu2", "--weight", "99999999999999999999"], None, "got 99999999999999999999"),
    (["add", "ftp://x"], None, "ftp"),
    (["add", "http://:11434"], None, "http://:11434"),
    (["add", ""], None, "URL is empty"),
    (["add", "gpu2:abc"], None, "'abc'"),
    (["add", "http://gpu2:99999"], None, "99999"),
    (["add", "gpu2 gpu4"], None, "gpu2 gpu4"),
    (["update", "box", "--url", "ftp://x"], None, "ftp"),
    (["add", "gpu1"], None, "http://gpu1:11434"),
    (["add", "http://gpu1:11434"], None, "http://gpu1:11434"),
    (["add", "GPU1:11434/"], None, "http://gpu1:11434"),
    (["update", "box", "--url", "gpu3"], None, "http://gpu3:11434"),
    (["add", "gpu2", "--id", "gpu3-11434"], None, "gpu3-11434"),
    (["add", "gpu2", "--id", "box"], None, "'box'"),
    (["add", "gpu2", "--id", "bad id"], None, "bad id"),
    (["add", "gpu2", "--name", "box"], None, "'box'"),
    (["add", "gpu2", "--name", "gpu3-11434"], None, "gpu3-11434"),
    (["update", "gpu3-11434", "--name", "box"], None, "'box'"),
    (["update", "box", "--name", "   "], None, "'   '"),
    (["update", "gpu1-1143", "--weight", "2"], None, "'gpu1-11434'"),
    (["enable", "gpu1-1143"], None, "'gpu1-11434'"),
    (["disable", "box", "gpu1-1143"], None, "'gpu1-11434'"),
    (["remove", "gpu1-1143", "--yes"], None, "'gpu1-11434'"),
    (["remove", "box", "nosuch", "--yes"], None, "'nosuch'"),
    (["update", "bxo", "--weight", "2"], None, "'box'"),
    (["update", "box", "--enable", "--disable"], None, "--enable and --disable"),
    (["add", "gpu2", "--api-key-env", "K", "--api-key-stdin"], "key\n", "--api-key-env and --api-key-stdin"),
    (["update", "box", "--api-key-env", "K", "--api-key-stdin"], "key\n", "--api-key-env and --api-key-stdin"),
    (["update", "box", "--no-api-key", "--api-key-env", "K"], None, "--no-api-key"),
    (["add", "gpu2", "--api-key-stdin"], "", "no API key"),
    (["add", "gpu2", "--api-key-stdin"], "  \n\n", "no API key"),
    (["update", "box", "--api-key-stdin"], "\n", "no API key"),
    (["add", "gpu2", "--api-key-env", "1BAD"], None, "'1BAD'"),
    (["update", "box", "--api-key-env", "GPU-KEY"], None, "'GPU-KEY'"),
    (["update", "box"], None, "nothing to change for 'box'"),
]


@pytest.mark.parametrize(("args", "stdin", "named"), BAD_INPUT, ids=[" ".join(c[0]) or "empty" for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_leaves_the_file_alone(two_instances, config, args, stdin, named):
    result = run(*args, input=stdin)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = one_error_line(result)
    assert named in line
    assert result.stdout == ""
    assert config.read_bytes() == two_instances


def test_unknown_reference_on_empty_registry_says_how_to_add(config):
    result = run("update", "gpu1", "--weight", "2")
    assert result.exit_code == 2
    assert "ollamactl add" in one_error_line(result)
    assert not config.exists()


def test_credentials_in_a_url_are_refused_and_never_echoed(config):
    result = run("add", "http://alice:hunter2@gpu2:11434")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "hunter2" not in line and "--api-key" in line
    assert not config.exists()


# --- 5. secrets ----------------------------------------------------------------------------------

def test_stored_key_never_shows_in_any_output(config):
    outputs = []

    def step(*args, input=None, code=0):
        result = run(*args, input=input)
        assert result.exit_code == code, (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
        return result

    assert step("add", "gpu1", "--api-key-stdin", input=SECRET + "\n").stdout == "gpu1-11434\n"
    assert SECRET in config.read_text()  # stored, in a private file
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    step("list")
    assert json.loads(step("list", "--json").stdout)[0]["auth"] == "stored"
    step("update", "gpu1-11434", "--weight", "2")
    step("paths")
    step("paths", "--json")
    # errors after a key was given
    step("add", "gpu1", "--api-key-stdin", input=SECRET, code=2)  # duplicate URL
    step("add", "gpu2", "--type", "nope", "--api-key-stdin", input=SECRET, code=2)
    step("add", "gpu2", "--api-key-stdin", input=SECRET + " extra", code=2)  # two words
    step("update", "gpu1-11434", "--weight", "0", "--api-key-stdin", input=SECRET, code=2)
    step("update", "gpu1-11434", "--url", "ftp://x", "--api-key-stdin", input=SECRET, code=2)
    step("update", "nope", "--api-key-stdin", input=SECRET, code=2)
    step("update", "gpu1-11434", "--api-key-stdin", input="other-" + SECRET)
    assert "other-" + SECRET in config.read_text()
    step("list", "--json")
    for output in outputs:
        assert SECRET not in output


def test_env_reference_replaces_a_stored_key_and_no_api_key_removes_both(config):
    ok("add", "gpu1", "--api-key-stdin", input=SECRET)
    ok("update", "gpu1-11434", "--api-key-env", "GPU1_KEY")
    assert by_id()["gpu1-11434"]["auth"] == "env:GPU1_KEY"
    assert SECRET not in config.read_text()  # switching to a reference drops the stored key
    ok("update", "gpu1-11434", "--api-key-stdin", input=SECRET)
    assert by_id()["gpu1-11434"]["auth"] == "stored"
    assert "GPU1_KEY" not in config.read_text()
    ok("update", "gpu1-11434", "--api-key-env", "GPU1_KEY")
    ok("update", "gpu1-11434", "--no-api-key")
    assert by_id()["gpu1-11434"]["auth"] == "none"
    [table] = tomllib.loads(config.read_text())["instances"]
    assert "api_key" not in table and "api_key_env" not in table


def test_a_malformed_stored_key_is_not_quoted_in_the_error(config):
    config.parent.mkdir(parents=True)
    config.write_text('version = 1\n[[instances]]\nid = "a"\nurl = "gpu1"\napi_key = 918273645546\n')
    result = run("list")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "api_key" in line and "918273645546" not in line


# --- 6. remove confirmation, paths, version -------------------------------------------------------

def test_remove_without_a_terminal_needs_yes(config):
    ok("add", "gpu1")
    before = config.read_bytes()
    result = run("remove", "gpu1-11434")
    assert result.exit_code == 2
    assert "--yes" in one_error_line(result)
    assert config.read_bytes() == before
    assert [item["id"] for item in listing()] == ["gpu1-11434"]


def test_remove_several_at_once_by_id_and_name():
    ok("add", "gpu1")
    ok("add", "gpu2", "--name", "second")
    ok("add", "gpu3")
    result = ok("remove", "gpu1-11434", "second", "--yes")
    assert result.stdout == ""
    assert "gpu1-11434" in result.stderr and "gpu2-11434" in result.stderr
    assert [item["id"] for item in listing()] == ["gpu3-11434"]


def test_paths_json_names_the_overridden_locations(isolated_env):
    locations = json.loads(ok("paths", "--json").stdout)
    config, state_dir = isolated_env["config"], isolated_env["state"]
    assert locations["registry"] == str(config)
    assert locations["backup"] == os.path.realpath(config) + ".bak"
    assert os.path.dirname(locations["state"]) == str(state_dir)
    table = ok("paths").stdout
    assert str(config) in table and str(state_dir) in table


def test_version_option():
    assert ok("--version").stdout.strip() == f"ollamactl {__version__}"
    assert ok("-V").stdout.strip() == f"ollamactl {__version__}"
