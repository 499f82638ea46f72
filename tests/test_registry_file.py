"""The registry file as untrusted input, after issue 23 (points 5 and 10): a registry symlinked to
/dev/zero was read without limit (MemoryError under a 2 GB cap), a FIFO hung every command, TOML
nested 500 levels gave a RecursionError in every command, and a UTF-8 BOM made the registry fail
with "Invalid statement (at line 1, column 1)". Now: regular files only (a symlink to one is
followed), at most 8 MB, at most 16 levels deep, each refused with an error naming the file (exit 1);
a BOM is accepted and kept when ollamactl edits the file."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
from cli_helpers import ok, one_error_line, run

from ollamactl.core.fleet import Fleet
from ollamactl.core.registry import file as registry_file

GOOD = 'version = 1\n\n[[instances]]\nid = "a"\nurl = "http://127.0.0.1:9"\n'
READERS = (["pick"], ["list"], ["pick", "--explain"], ["health"], ["add", "127.0.0.1:8"])


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def cli(*args: str) -> subprocess.CompletedProcess:
    """ollamactl in a child under a 2 GB address-space cap; a hang ends the test (TimeoutExpired)."""
    return subprocess.run([sys.executable, "-m", "ollamactl", *args], capture_output=True, text=True,
                          env=os.environ.copy(), preexec_fn=_limited, timeout=60)


def refused(config, words: str) -> None:
    for args in READERS:
        result = cli(*args)
        assert result.returncode == 1, (args, result.returncode, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"registry {config} {words}" in result.stderr, result.stderr


def test_a_registry_linked_to_dev_zero_is_refused_not_read(isolated_env):
    config = isolated_env["config"]
    config.parent.mkdir(parents=True)
    config.symlink_to("/dev/zero")
    refused(config, "is a device or socket, not a regular file")


def test_a_fifo_registry_does_not_hang(isolated_env):
    config = isolated_env["config"]
    config.parent.mkdir(parents=True)
    os.mkfifo(config)
    refused(config, "is a FIFO, not a regular file")


def test_a_registry_larger_than_the_cap_is_refused(isolated_env):
    config = isolated_env["config"]
    config.parent.mkdir(parents=True)
    config.write_text(GOOD + "#" * registry_file.MAX_BYTES + "\n")
    refused(config, "is larger than 8 MB")


@pytest.mark.parametrize("nesting", ["x = " + "[" * 600 + "]" * 600, "x = " + "{a=" * 20 + "1" + "}" * 20,
                                     "[" + ".".join(["t"] * 20) + "]"], ids=["array-600", "inline-20", "table-20"])
def test_deep_toml_is_refused_in_words(isolated_env, nesting):
    config = isolated_env["config"]
    config.parent.mkdir(parents=True)
    config.write_text(GOOD.replace("\n\n", f"\n{nesting}\n\n", 1))
    for args in (["list"], ["pick"], ["add", "127.0.0.1:8"]):
        line = one_error_line(run(*args))
        assert f"registry {config} nests tables or arrays more than 16 levels deep" in line, line
    assert config.read_text().count("127.0.0.1:8") == 0


def test_a_symlink_to_a_regular_file_is_still_followed(isolated_env, tmp_path):
    real = tmp_path / "dotfiles" / "instances.toml"
    real.parent.mkdir()
    real.write_text(GOOD)
    config = isolated_env["config"]
    config.parent.mkdir(parents=True)
    config.symlink_to(real)
    assert "http://127.0.0.1:9" in ok("list").stdout
    ok("add", "127.0.0.1:8")
    assert config.is_symlink() and "127.0.0.1:8" in real.read_text()


def test_a_bom_is_accepted_and_kept(isolated_env):
    config = isolated_env["config"]
    config.parent.mkdir(parents=True)
    config.write_bytes(registry_file.BOM + GOOD.encode())
    assert "http://127.0.0.1:9" in ok("list").stdout  # before: "Invalid statement (at line 1, column 1)"
    assert cli("pick", "--explain").returncode == 3  # read (nothing healthy), not refused
    ok("add", "127.0.0.1:8", "--name", "b")
    ok("update", "b", "--weight", "3")
    raw = config.read_bytes()
    assert raw.startswith(registry_file.BOM) and raw.count(registry_file.BOM) == 1
    assert [i.weight for i in Fleet().instances()] == [1, 3]
    ok("remove", "b", "--yes")
    raw = config.read_bytes()
    assert raw.startswith(registry_file.BOM + GOOD.encode()) and b"127.0.0.1:8" not in raw
