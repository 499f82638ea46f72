"""Damaged cache files, after issue 23 (points 5 and 6): a NUL byte in `registry.snapshot` gave a
traceback in `exec`, a flipped bit in `state.view` a MemoryError, and a corrupted snapshot made
`list` and `pick --explain` show (and probe) a URL that is not in the registry. Each cache file now
carries a checksum (core/state/marshal_cache.py): a damaged one is ignored and made again, never believed.
The test damages every cache at many positions (a flipped bit, a NUL written or inserted, the file
cut short) and checks that each command still answers exactly as from the real files."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time

import pytest
from cli_helpers import ok

from ollamactl.core.fleet import Fleet
from ollamactl.core.state import marshal_cache

CACHES = ("registry.snapshot", "state.view", "pick.memo")
COMMANDS = (("list",), ("pick", "--explain", "--key", "user-7"), ("pick", "-m", "llama3.2", "--key", "u9", "-n", "3"))


def _age(*paths) -> None:
    stamp = time.time() - 60  # settled: caches may be made of these files
    for path in paths:
        os.utime(path, (stamp, stamp))


@pytest.fixture
def cached(isolated_env):
    """Three healthy (cached, fresh for an hour) instances; every cache file made; the answers."""
    config, state = isolated_env["config"], isolated_env["state"]
    fleet = Fleet()
    instances = [fleet.add(f"127.0.0.1:{n}") for n in (7, 8, 9)]  # nothing listens: a probe stays local
    with open(config, "a") as handle:
        handle.write("\n[settings]\nhealth_ttl = 3600\nstale_ttl = 7200\n")
    now = time.time()

    def healthy(data: dict) -> None:
        for instance in instances:
            data["health"][instance.id] = {
                "url": instance.url, "healthy": True, "error": None, "latency_ms": 3.0, "version": "0.12.6",
                "models": [{"name": "llama3.2:latest", "digest": "d" * 64, "size": 1}], "loaded": [],
                "checked_at": now}

    Fleet().store.update(healthy)
    _age(config, state / "state.json")
    answers = {args: answer(args) for args in COMMANDS for _ in range(2)}  # the second run reads the caches
    assert all((state / name).exists() for name in CACHES)
    return state, answers, {i.url for i in instances}


def answer(args: tuple[str, ...]) -> str:
    result = ok(*args)
    return re.sub(r"checked [^;)]* ago", "checked ... ago", result.stdout + result.stderr)


def damaged(data: bytes, every: bool = False) -> list[bytes]:
    """`data` with a bit flipped, a NUL written, a NUL inserted and the rest cut off, at many
    positions (at `every` one: the slow sweep)."""
    size = len(data)
    step = 1 if every else max(1, size // 12)
    positions = sorted({*range(min(size, 8)), *range(0, size, step), size - 1})
    out = []
    for at in positions:
        out += [data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:], data[:at] + b"\0" + data[at + 1:],
                data[:at] + b"\0" + data[at:], data[:at]]
    return out


@pytest.mark.parametrize("every", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["sampled", "every-byte"])
@pytest.mark.parametrize("name", CACHES)
def test_a_damaged_cache_is_never_believed(cached, name, every):
    state, answers, urls = cached
    path = state / name
    good = path.read_bytes()
    for junk in damaged(good, every):
        path.write_bytes(junk)
        for args, expected in answers.items():
            assert answer(args) == expected, (name, junk, args)
        assert marshal_cache.unpack(path.read_bytes()) is not None  # made again, with a valid checksum
        path.write_bytes(good)  # the same cache, whole, for the next damage
    assert answer(COMMANDS[0]) == answers[COMMANDS[0]]


def test_a_snapshot_that_names_another_url_is_not_believed(cached):
    """The observation: the snapshot's URL changed by one byte; `list` and `pick --explain` showed it."""
    state, answers, urls = cached
    path = state / "registry.snapshot"
    good = path.read_bytes()
    at = good.index(b"127.0.0.1:8")
    path.write_bytes(good[:at] + b"127.0.0.1:5" + good[at + 11:])
    for args in COMMANDS:
        result = ok(*args)
        assert "127.0.0.1:5" not in result.stdout + result.stderr and answer(args) == answers[args]


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def nul_in_every_url(data: bytes) -> bytes:
    for port in b"789":
        at = data.find(b"127.0.0.1:" + bytes([port]))
        while at >= 0:
            data = data[:at + 3] + b"\0" + data[at + 4:]
            at = data.find(b"127.0.0.1:" + bytes([port]))
    return data


def bigger_lists(data: bytes) -> bytes:
    """Every one-item list made to claim a billion items (one flipped bit in its length)."""
    return re.sub(rb"([\[\xdb]\x01\x00\x00)\x00", lambda match: match[1] + b"\x40", data)


@pytest.mark.parametrize("name, damage", [("registry.snapshot", nul_in_every_url), ("pick.memo", nul_in_every_url),
                                          ("state.view", bigger_lists)], ids=["snapshot-nul", "memo-nul", "view-bit"])
def test_the_commands_a_process_runs_survive_nul_and_flipped_bits(cached, name, damage):
    """`exec`, the fast `pick` route and `list` in their own processes under a 2 GB cap, with a NUL
    in every URL of a cache or a list length one bit too large (before: a URL with a NUL shown, and
    a MemoryError traceback in `exec`)."""
    state, _, urls = cached
    path = state / name
    good = path.read_bytes()
    assert damage(good) != good
    for args in (["exec", "--", sys.executable, "-c", "import os; print(os.environ['OLLAMA_HOST'])"],
                 ["pick"], ["pick", "-n", "3"], ["list"]):
        path.write_bytes(damage(good))
        result = subprocess.run([sys.executable, "-m", "ollamactl", *args], capture_output=True, text=True,
                                env=os.environ.copy(), timeout=60, preexec_fn=_limited)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (name, args, result.stderr)
        assert "\\x00" not in result.stdout and "\0" not in result.stdout, (name, args, result.stdout)
        lines = result.stdout.splitlines()
        column = lines[0].split().index("URL") if args == ["list"] else 0
        shown = [line.split()[column] for line in (lines[1:] if args == ["list"] else lines)]
        assert shown and all(any(url.endswith(one.split("//")[-1]) for url in urls) for one in shown), shown
