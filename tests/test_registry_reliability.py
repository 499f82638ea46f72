"""The registry's reliability rules (design.md), each one a test that fails if the rule breaks.

Crashes, parallel writers and umasks need real processes: those tests run `python -m ollamactl`
with the test's environment, so they stay on the temporary registry.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import ok, one_error_line, run

from ollamactl import __version__
from ollamactl.core.fleet import Fleet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

def ids() -> list[str]:
    return [item["id"] for item in json.loads(ok("list", "--json").stdout)]


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """`python -m ollamactl ...` in a real process, with this test's (isolated) environment."""
    return subprocess.run([sys.executable, "-m", "ollamactl", *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture
def config(isolated_env) -> Path:
    return isolated_env["config"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- rule 1: atomic writes and the backup ------------------------------------------------------------

PAUSE_BEFORE_REPLACE = textwrap.dedent("""
    import os, sys, time
    real_replace = os.replace
    def paused_replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == "instances.toml":
            print("ready", os.fspath(src), flush=True)
            time.sleep(60)
        return real_replace(src, dst, *args, **kwargs)
    os.replace = paused_replace
    from ollamactl.cli.launcher import main
    main(sys.argv[1:])
""")


def test_a_writer_killed_before_the_rename_leaves_the_old_file(config):
    ok("add", "gpu1")
    ok("update", "gpu1-11434", "--weight", "2")
    before = config.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", PAUSE_BEFORE_REPLACE, "add", "gpu2", "--no-check"],
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the writer never reached os.replace (does it still write via a temp file?)"
        line = proc.stdout.readline().split()
        assert line[:1] == ["ready"], (line, proc.stderr.read() if proc.poll() is not None else "")
        temp = Path(line[1])
        # the new content is complete in a temp file next to the registry, not in the registry itself
        assert temp.parent == config.parent and temp.name != config.name
        assert b"gpu2" in temp.read_bytes() and config.read_bytes() == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert config.read_bytes() == before
    assert [i["id"] for i in tomllib.loads(config.read_text())["instances"]] == ["gpu1-11434"]
    assert temp.exists()  # the dead writer's half-finished temp file is still there ...
    # the dead writer's lock went with it: the next edit goes through (a lock still held fails it)
    ok("add", "gpu3")
    assert ids() == ["gpu1-11434", "gpu3-11434"]
    assert not temp.exists()  # ... and the next writer, holding the lock, cleared it away


def test_backup_holds_the_previous_good_content(config):
    backup = config.with_name("instances.toml.bak")
    ok("add", "gpu1")
    first = config.read_bytes()
    ok("add", "gpu2")
    assert backup.read_bytes() == first
    second = config.read_bytes()
    ok("update", "gpu2-11434", "--weight", "3")
    assert backup.read_bytes() == second
    third = config.read_bytes()
    ok("remove", "gpu1-11434", "--yes")
    assert backup.read_bytes() == third
    assert mode(backup) == 0o600
    # a refused edit does not touch the backup either
    assert run("add", "gpu2").exit_code == 2
    assert backup.read_bytes() == third


# --- rule 2: parallel writers lose nothing ------------------------------------------------------------

def test_twenty_parallel_adds_all_land(config):
    procs = [subprocess.Popen([sys.executable, "-m", "ollamactl", "add", f"node{n}"], env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(20)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    printed = sorted(out.strip() for out, _ in outputs)
    assert printed == sorted(f"node{n}-11434" for n in range(20))
    data = tomllib.loads(config.read_text())
    assert sorted(i["id"] for i in data["instances"]) == printed
    assert sorted(ids()) == printed


# --- rule 4 (modes): file 0600, created directories 0700, whatever the umask ----------------------------

@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022])
def test_modes_do_not_depend_on_the_umask(tmp_path, monkeypatch, umask):
    config = tmp_path / "home" / "deep" / "instances.toml"
    monkeypatch.setenv("OLLAMACTL_CONFIG", str(config))
    for host in ("gpu1", "gpu2"):
        result = cli("add", host, preexec_fn=lambda: os.umask(umask))
        assert result.returncode == 0, result.stderr
    assert mode(config) == 0o600
    assert mode(config.with_name("instances.toml.bak")) == 0o600
    assert mode(config.with_name("instances.toml.lock")) & 0o077 == 0
    assert mode(tmp_path / "home") == 0o700
    assert mode(tmp_path / "home" / "deep") == 0o700
    leftovers = [p.name for p in config.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_hand_made_world_readable_registry_becomes_private(config):
    config.parent.mkdir(parents=True)
    config.write_text("version = 1\n")
    config.chmod(0o644)
    ok("add", "gpu1", "--api-key-stdin", input="sk-abc")
    assert mode(config) == 0o600


def test_existing_directories_keep_their_mode(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    monkeypatch.setenv("OLLAMACTL_CONFIG", str(shared / "instances.toml"))
    ok("add", "gpu1")
    assert mode(shared) == 0o755


# --- rule 3: a corrupt registry is never overwritten ----------------------------------------------------

CORRUPT = "version = 1\n[[instances]\n"

EDITS = [
    ["add", "gpu1"],
    ["update", "gpu1-11434", "--weight", "2"],
    ["enable", "gpu1-11434"],
    ["disable", "gpu1-11434"],
    ["remove", "gpu1-11434", "--yes"],
    ["update", "gpu1-11434", "--api-key-stdin"],
    ["list"],
    ["list", "--json"],
]


@pytest.mark.parametrize("args", EDITS, ids=" ".join)
def test_corrupt_registry_is_named_with_line_and_column_and_left_alone(config, args):
    config.parent.mkdir(parents=True)
    config.write_text(CORRUPT)
    result = run(*args, input="sk-abc\n")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    line = one_error_line(result)
    assert str(config) in line and "line 2, column" in line
    assert result.stdout == ""
    assert config.read_text() == CORRUPT
    assert not config.with_name("instances.toml.bak").exists()


def test_invalid_content_is_named_too(config):
    config.parent.mkdir(parents=True)
    text = 'version = 1\n[[instances]]\nid = "a"\nurl = "gpu1"\nweight = 0\n'
    config.write_text(text)
    result = run("add", "gpu2")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert str(config) in line and "weight" in line
    assert config.read_text() == text


@pytest.mark.parametrize("value", ["inf", "2.5", "0"])
def test_a_concurrency_that_is_not_a_count_is_named_not_a_traceback(config, value):
    config.parent.mkdir(parents=True)
    config.write_text(f'version = 1\n[settings]\nconcurrency = {value}\n[[instances]]\nid = "a"\nurl = "gpu1"\n')
    for args in (["health"], ["list"]):
        result = run(*args)
        assert result.exit_code == 1
        assert "settings.concurrency must be a whole number" in one_error_line(result)


def test_a_newer_files_unknown_setting_values_fall_back_to_the_defaults(config):
    config.parent.mkdir(parents=True)
    config.write_text('version = 2\n[settings]\nconcurrency = inf\ntimeout = "fast"\n')
    reg = Fleet().registry()
    assert (reg.setting("concurrency"), reg.setting("timeout")) == (256, 5.0)


def test_an_unusable_path_is_one_error_line_not_a_traceback(config):
    config.mkdir(parents=True)  # a directory where the file should be
    for args in (["add", "gpu1"], ["list"]):
        result = run(*args)
        assert result.exit_code == 1
        assert str(config) in one_error_line(result)


# --- rule 5: a symlinked registry stays a symlink ----------------------------------------------------------

@pytest.mark.parametrize("relative", [False, True], ids=["absolute-link", "relative-link"])
def test_symlinked_registry_is_written_through(tmp_path, monkeypatch, relative):
    target = tmp_path / "dotfiles" / "ollamactl" / "instances.toml"
    target.parent.mkdir(parents=True)
    target.write_text('# managed by my dotfiles\nversion = 1\n')
    link = tmp_path / "config" / "instances.toml"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent) if relative else target)
    link_text = os.readlink(link)
    monkeypatch.setenv("OLLAMACTL_CONFIG", str(link))

    ok("add", "gpu1")
    ok("update", "gpu1-11434", "--weight", "2")
    assert link.is_symlink() and os.readlink(link) == link_text
    assert "# managed by my dotfiles" in target.read_text()
    assert tomllib.loads(target.read_text())["instances"][0]["weight"] == 2
    assert target.with_name("instances.toml.bak").exists()
    assert sorted(p.name for p in link.parent.iterdir()) == ["instances.toml"]
    ok("remove", "gpu1-11434", "--yes")
    assert link.is_symlink() and ids() == []


# --- rule 6: a newer schema is read but never rewritten -------------------------------------------------

NEWER = """\
version = 2

[settings]
strategy = "something-new"

[[instances]]
id = "gpu1-11434"
url = "http://gpu1:11434"
new_field = { nested = true }
"""


def test_newer_schema_version_is_listed_but_never_rewritten(config):
    config.parent.mkdir(parents=True)
    config.write_text(NEWER)
    assert ids() == ["gpu1-11434"]
    for args in (["add", "gpu2"], ["update", "gpu1-11434", "--weight", "2"], ["disable", "gpu1-11434"],
                 ["enable", "gpu1-11434"], ["remove", "gpu1-11434", "--yes"]):
        result = run(*args)
        assert result.exit_code == 1, (args, result.stderr)
        assert "version 2" in one_error_line(result)
        assert config.read_text() == NEWER


# --- comments and hand-added keys survive --------------------------------------------------------------

HAND_WRITTEN = """\
# My fleet. Do not delete this header.
version = 1

[[instances]]
id = "gpu1-11434"
url = "http://gpu1:11434"

# The big box under the desk
[[instances]]
id = "gpu2-11434"
name = "big"   # what we call it
url = "http://gpu2:11434"
owner = "me"

# tuning for the router
[settings]
custom = 1
timeout = 7.5 # slow network
"""


def lines_before(text: str, marker: str) -> str:
    lines = text.splitlines()
    return lines[lines.index(marker) - 1]


def test_comments_and_hand_added_keys_survive_add_update_remove(config):
    config.parent.mkdir(parents=True)
    config.write_text(HAND_WRITTEN)

    ok("add", "gpu3")
    ok("update", "big", "--weight", "4", "--name", "bigger")
    ok("disable", "gpu2-11434")
    ok("update", "gpu1-11434", "--type", "chat")
    ok("remove", "gpu1-11434", "--yes")  # the instance just above the commented one
    ok("add", "gpu4")

    text = config.read_text()
    assert text.startswith("# My fleet. Do not delete this header.\n")
    assert 'name = "bigger"   # what we call it' in text
    assert "timeout = 7.5 # slow network" in text
    # each comment still sits right above what it describes
    assert lines_before(text, 'id = "gpu2-11434"') == "[[instances]]"
    assert lines_before(text, "[[instances]]") == "# The big box under the desk"
    assert lines_before(text, "[settings]") == "# tuning for the router"
    data = tomllib.loads(text)
    assert data["settings"] == {"custom": 1, "timeout": 7.5}
    instances = {i["id"]: i for i in data["instances"]}
    assert list(instances) == ["gpu2-11434", "gpu3-11434", "gpu4-11434"]
    assert instances["gpu2-11434"]["owner"] == "me"
    assert (instances["gpu2-11434"]["weight"], instances["gpu2-11434"]["enabled"]) == (4, False)


def test_removing_every_instance_and_adding_again(config):
    config.parent.mkdir(parents=True)
    config.write_text(HAND_WRITTEN)
    ok("remove", "gpu1-11434", "big", "--yes")
    assert ids() == []
    ok("add", "gpu5")
    assert ids() == ["gpu5-11434"]
    text = config.read_text()
    assert "# The big box under the desk" in text and "# tuning for the router" in text
    assert tomllib.loads(text)["settings"]["custom"] == 1
    ok("remove", "gpu5-11434", "--yes")
    ok("add", "gpu6")
    assert ids() == ["gpu6-11434"]


def test_a_hand_written_empty_or_inline_instances_array_can_be_edited(config):
    config.parent.mkdir(parents=True)
    config.write_text("version = 1\ninstances = []\n")
    ok("add", "gpu1")
    assert ids() == ["gpu1-11434"]
    config.write_text('version = 1\ninstances = [{id = "a", url = "gpu1"}]\n')
    ok("add", "gpu2")
    ok("update", "a", "--weight", "3")
    assert ids() == ["a", "gpu2-11434"]
    assert tomllib.loads(config.read_text())["instances"][0]["weight"] == 3


# --- start-up: the executable and python -m ---------------------------------------------------------

def test_python_m_ollamactl_version():
    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ollamactl {__version__}"


def test_console_script_version_and_a_real_round_trip(config):
    exe = shutil.which("ollamactl", path=os.path.dirname(sys.executable)) or shutil.which("ollamactl")
    if exe is None:
        pytest.skip("the ollamactl console script is not installed")
    env = dict(os.environ)
    version = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"ollamactl {__version__}"
    added = subprocess.run([exe, "add", "gpu1", "--api-key-stdin"], input="sk-xyz\n", env=env,
                           capture_output=True, text=True, timeout=60)
    assert (added.returncode, added.stdout) == (0, "gpu1-11434\n"), added.stderr
    assert "sk-xyz" not in added.stderr
    removed = subprocess.run([exe, "remove", "gpu1-11434"], stdin=subprocess.DEVNULL, env=env,
                             capture_output=True, text=True, timeout=60)
    assert removed.returncode == 2 and "--yes" in removed.stderr
    assert "gpu1-11434" in config.read_text()
