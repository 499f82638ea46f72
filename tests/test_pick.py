"""`ollamactl pick` end to end: formats, filters, fallbacks, exit codes, shared rotation, start-up cost."""

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest
from cli_helpers import run
from fleet_setup import fake_fleet, fill_cache
from typer.testing import CliRunner

from ollamactl.cli import fast_route
from ollamactl.cli.app import app
from ollamactl.core.fleet import Fleet
from ollamactl.core.state import cursors


def refused_url():
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def run_pick(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ollamactl", "pick", *args], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=60)


def test_formats_print_only_the_answer_on_stdout():
    fake_fleet(1)
    assert run_pick().stdout == "http://gpu1:11434\n"
    assert run_pick("--format", "env").stdout == "OLLAMA_HOST=http://gpu1:11434\n"
    assert run_pick("--format", "openai").stdout == "http://gpu1:11434/v1\n"
    as_json = json.loads(run_pick("--format", "json").stdout)
    assert {"id": "gpu1-11434", "name": "gpu1-11434", "url": "http://gpu1:11434", "type": "both"}.items() <= \
        as_json.items()


def test_count_advances_the_rotation_and_the_next_call_continues_it():
    fake_fleet(3)
    first = run_pick("-n", "4").stdout.split()
    assert first == ["http://gpu1:11434", "http://gpu2:11434", "http://gpu3:11434", "http://gpu1:11434"]
    assert run_pick().stdout.strip() == "http://gpu2:11434"


def test_explain_with_nothing_eligible_gives_one_whole_line_per_instance(monkeypatch):
    ids = [Fleet().add(h).id for h in ("gpu1", "gpu2")]
    fill_cache({i: (f"http://{i.rsplit('-', 1)[0]}:11434", False, [], ()) for i in ids})
    monkeypatch.setenv("OLLAMA_HOST", refused_url())  # the last resort is down too
    result = run_pick("--explain")
    assert result.returncode == 3 and result.stdout == ""
    explained = [line for line in result.stderr.splitlines() if not line.startswith("ollamactl: ")]
    assert [line.split(":", 1)[0] for line in explained] == ids + ["default"], result.stderr
    assert all("refresh" in line for line in explained[:2])  # the age and the hint stay on their instance's line


def test_model_filter_and_explain_give_reasons_on_stderr():
    ids = [Fleet().add(h).id for h in ("gpu1", "gpu2", "gpu3", "gpu4")]
    Fleet().add("gpu5", enabled=False)
    Fleet().add("emb", type="embedding")
    fill_cache({
        ids[0]: ("http://gpu1:11434", True, ["llama3.2:latest"], ()),
        ids[1]: ("http://gpu2:11434", True, ["qwen2.5:7b"], ()),
        ids[2]: ("http://gpu3:11434", False, [], ()),
        ids[3]: ("http://gpu4:11434", True, ["llama3.2:latest"], ()),
        "emb-11434": ("http://emb:11434", True, ["llama3.2:latest"], ()),
    })
    Fleet().store.update(lambda d: d["breaker"].update({ids[3]: {"failures": 0, "ejections": 1,
                                                          "ejected_until": time.time() + 60}}))
    result = run_pick("-m", "llama3.2", "-t", "chat", "--explain")
    assert result.returncode == 0 and result.stdout == "http://gpu1:11434\n"
    lines = {line.split()[0]: line for line in result.stderr.splitlines()}
    assert "chosen" in lines["gpu1-11434"]
    assert "no model llama3.2:latest" in lines["gpu2-11434"]
    assert "unhealthy: connection refused" in lines["gpu3-11434"]
    assert "ejected until" in lines["gpu4-11434"]
    assert "disabled" in lines["gpu5-11434"]
    assert "wrong type" in lines["emb-11434"]


def test_model_found_nowhere_warns_or_fails_with_strict():
    fake_fleet(2)
    loose = run_pick("-m", "mistral")
    assert loose.returncode == 0 and loose.stdout.startswith("http://gpu")
    assert "mistral:latest" in loose.stderr and "warning" in loose.stderr
    strict = run_pick("-m", "mistral", "--strict")
    assert strict.returncode == 3 and strict.stdout == "" and "mistral:latest" in strict.stderr


@pytest.mark.parametrize("args, words", [
    (["-s", "quickest"], "unknown strategy 'quickest'"),
    (["-t", "vision"], "unknown type 'vision'"),
    (["--format", "yaml"], "unknown format 'yaml'"),
    (["-n", "0"], "--count must be a whole number from 1 to 10000, got 0"),
    (["-n", "1000000000"], "got 1000000000"),  # before: a MemoryError after 3.8 GB
    (["-n", "many"], "'many' is not a valid int"),
    (["--bogus"], "no such option: --bogus"),
])
def test_bad_input_exits_2_with_the_offending_value(args, words):
    fake_fleet(1)
    result = run_pick(*args)
    assert result.returncode == 2 and result.stdout == "" and words in result.stderr
    assert result.stderr.startswith("ollamactl: error: ") and result.stderr.count("\n") == 1  # one line, as elsewhere


def test_nothing_registered_uses_the_default_instance_without_probing():
    env = dict(os.environ, OLLAMA_HOST="gpu9:8000")
    assert run_pick(env=env).stdout == "http://gpu9:8000\n"
    assert run_pick(env={k: v for k, v in env.items() if k != "OLLAMA_HOST"}).stdout == "http://127.0.0.1:11434\n"


def test_nothing_eligible_and_default_down_exits_3_with_reasons():
    ids = fake_fleet(2)
    fill_cache({i: (f"http://{i.rsplit('-', 1)[0]}:11434", False, [], ()) for i in ids})
    result = run_pick(env=dict(os.environ, OLLAMA_HOST=refused_url()))
    assert result.returncode == 3 and result.stdout == ""
    assert "gpu1-11434: unhealthy: connection refused" in result.stderr
    assert "default: unhealthy" in result.stderr


def test_nothing_eligible_falls_back_to_a_healthy_default_instance(sim):
    default = sim.add()
    ids = fake_fleet(1)
    fill_cache({ids[0]: ("http://gpu1:11434", False, [], ())})
    result = run_pick(env=dict(os.environ, OLLAMA_HOST=default.url))
    assert result.returncode == 0 and result.stdout == f"{default.url}\n"
    assert "default instance" in result.stderr


def test_a_stale_cache_is_probed_once_then_reused_without_network(sim):
    up, down = sim.add(), sim.add()
    Fleet().add(up.url, name="up")
    Fleet().add(down.url, name="down")
    down.set_fault("refuse")
    first = run_pick("-n", "2")
    assert first.stdout.split() == [up.url, up.url]
    probes = len(up.requests)
    assert probes >= 2  # /api/version and /api/tags at least
    assert run_pick().stdout.strip() == up.url
    assert len(up.requests) == probes  # fresh cache: no network I/O
    down.set_fault(None)
    assert sorted(run_pick("--refresh", "-n", "2").stdout.split()) == sorted([up.url, down.url])


def test_a_changed_url_invalidates_its_cache_entry(sim):
    good = sim.add()
    instance = Fleet().add("gpu1")
    fill_cache({instance.id: ("http://gpu1:11434", True, ["llama3.2:latest"], ())})
    Fleet().update(instance.id, url=good.url)
    assert run_pick().stdout.strip() == good.url
    assert good.requests  # the new URL was probed before being picked


def start_rotations_again():
    Fleet().store.update(lambda d: d["weights"].clear())
    (Fleet().locations.state_dir / cursors.NAME).unlink(missing_ok=True)


def test_typer_and_fast_paths_give_identical_answers(capsys):
    """Both routes call the same body with the same values: check they agree."""
    fake_fleet(3, models=("llama3.2:latest", "qwen2.5:7b"))
    vectors = [["-n", "3"], ["-m", "qwen2.5:7b", "-n", "2", "--format", "env"], ["--key", "user-7", "-n", "2"],
               ["-s", "weighted", "-n", "4", "--format", "json"], ["-s", "nope"], ["-t", "embedding", "-n", "2"]]
    for argv in vectors:
        start_rotations_again()
        code = fast_route.main(["pick", *argv])
        fast = capsys.readouterr()
        start_rotations_again()
        result = CliRunner().invoke(app, ["pick", *argv])
        assert (result.exit_code, result.stdout) == (code, fast.out), argv


PICKER = """
import sys
from ollamactl.cli import fast_route
for _ in range({count}):
    fast_route.main(["pick"])
"""


def _parallel_picks(processes, per_process):
    procs = [subprocess.Popen([sys.executable, "-c", PICKER.format(count=per_process)], stdout=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    return Counter(line for proc in procs for line in proc.communicate(timeout=120)[0].split())


def test_parallel_processes_share_one_rotation_exactly():
    fake_fleet(4)
    counts = _parallel_picks(8, 100)
    assert sorted(counts.values()) == [200, 200, 200, 200]


@pytest.mark.slow
def test_xargs_style_parallel_ollamactl_pick_calls_share_one_rotation():
    fake_fleet(4)
    result = subprocess.run("seq 400 | xargs -P 16 -n 1 sh -c 'ollamactl pick'", shell=True, capture_output=True,
                            text=True, timeout=300)
    assert sorted(Counter(result.stdout.split()).values()) == [100, 100, 100, 100]


HEAVY = ("httpx", "rich", "asyncio", "pydantic", "typer", "click", "tomlkit", "filelock", "platformdirs",
         # and what a pick from the cache and the registry snapshot has no use for
         "tomllib", "tomli", "datetime", "argparse", "gettext", "locale", "shutil", "subprocess", "inspect",
         "dataclasses", "socket", "ssl", "http", "email", "difflib", "hashlib",
         "pathlib", "typing", "enum", "json", "re", "urllib", "ipaddress", "signal", "threading", "weakref")
# Everything from the standard library a pick with a fresh cache may import, beyond the bare
# interpreter; what `site` imports anyway (os and its helpers) is listed too, as the probe runs without it.
PICK_STDLIB = {"__future__", "os", "stat", "_stat", "posixpath", "genericpath", "_collections_abc",  # site's
               "math", "fcntl", "atexit", "gc", "contextlib", "collections", "_collections", "itertools", "keyword",
               "operator", "_operator", "reprlib", "types", "functools", "_functools",
               "zlib"}  # the cache files' checksum (core/state/marshal_cache.py)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def imported_modules(importtime_output: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in importtime_output.splitlines() if line.startswith("import time:")}


def test_pick_with_a_fresh_cache_imports_nothing_heavy():
    fake_fleet(2)
    stamp = time.time() - 60  # an old registry file: it is read from its snapshot (registry_snapshot)
    os.utime(Fleet().locations.registry, (stamp, stamp))
    assert run_pick().returncode == 0  # writes the snapshot
    # Without site (-S): what an editable install's finder or another package's .pth imports at
    # start-up would otherwise hide what pick itself imports.
    env = dict(os.environ, PYTHONPATH=ROOT)
    probe = "from ollamactl.cli.launcher import main; main(['pick', '-m', 'llama3.2'])"
    result = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", probe], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("http://gpu"), result.stderr
    bare = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", "pass"], capture_output=True, text=True,
                          timeout=60)
    modules = imported_modules(result.stderr) - imported_modules(bare.stderr)
    assert {"ollamactl.core.registry.snapshot", "ollamactl.core.state.view"} <= modules  # the probe saw them
    assert not {name.split(".")[0] for name in modules}.intersection(HEAVY)
    assert {name for name in modules if not name.startswith("ollamactl")} <= PICK_STDLIB, sorted(modules)
    # and from the pick memo (core/routing/pick_memo.py), once made of settled files: fewer modules still
    os.utime(os.path.join(Fleet().locations.state_dir, "state.json"), (stamp, stamp))
    assert run_pick("-m", "llama3.2").returncode == 0  # makes the memo
    memo = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", probe], capture_output=True, text=True,
                          env=env, timeout=60)
    assert memo.returncode == 0 and memo.stdout.startswith("http://gpu"), memo.stderr
    from_memo = imported_modules(memo.stderr) - imported_modules(bare.stderr)
    assert "ollamactl.core.routing.pick_memo" in from_memo and "ollamactl.core.state.view" not in from_memo
    assert from_memo <= modules, sorted(from_memo - modules)


def test_a_cache_entry_stamped_in_the_future_is_not_trusted(sim):
    """A clock that jumped back must not keep an old "unhealthy" answer fresh for ever."""
    up = sim.add()
    instance = Fleet().add(up.url)
    fill_cache({instance.id: (up.url, False, [], ())})
    Fleet().store.update(lambda d: d["health"][instance.id].update(checked_at=time.time() + 86400))
    result = run_pick()
    assert (result.returncode, result.stdout) == (0, f"{up.url}\n"), result.stderr
    assert up.requests  # it was probed again


@pytest.mark.parametrize("section, value", [
    ("cursors", {"rr|any|*": "two"}),
    ("weights", {"rr|any|*": {"gpu1-11434": "heavy"}}),
    ("breaker", {"gpu1-11434": {"ejected_until": "later"}}),
    ("latency", {"gpu1-11434": "slow"}),
])
def test_a_malformed_state_entry_is_dropped_with_a_warning_not_a_traceback(section, value):
    fake_fleet(2)
    data = json.loads(Fleet().locations.state_file.read_text())
    data[section] = value
    Fleet().locations.state_file.write_text(json.dumps(data))
    for strategy in ("least-latency", "round-robin", "weighted"):
        result = run_pick("-s", strategy)
        assert result.returncode == 0 and result.stdout.startswith("http://gpu"), result.stderr
        assert "Traceback" not in result.stderr
        if strategy == "least-latency":  # stateless: reads, warns, writes nothing
            assert "1 malformed entry" in result.stderr
    assert run_pick().stderr == ""  # a stateful pick wrote the cleaned state back


@pytest.mark.parametrize("entry", [5, "junk", {"url": "http://gpu1:11434", "healthy": True, "checked_at": "now"},
                                   {"url": "http://gpu1:11434", "healthy": True, "checked_at": 1e18, "models": 7}])
def test_a_malformed_health_entry_is_probed_again_not_a_traceback(entry):
    ids = fake_fleet(1)
    Fleet().store.update(lambda d: d["health"].update({ids[0]: entry}))
    result = run_pick(env=dict(os.environ, OLLAMA_HOST=refused_url()))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "gpu1-11434: unhealthy: cannot resolve host gpu1" in result.stderr


INTERRUPTED = """
import sys
from ollamactl.cli import fast_route
from ollamactl.core.fleet import Fleet
def interrupted(self, request):
    raise KeyboardInterrupt
Fleet.picks = interrupted
sys.exit(fast_route.main(["pick"]))
"""


def test_ctrl_c_exits_130_without_a_traceback():
    fake_fleet(1)
    result = subprocess.run([sys.executable, "-c", INTERRUPTED], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "ollamactl: error: interrupted\n")


def test_a_reader_that_goes_away_is_not_a_traceback():
    fake_fleet(1)
    proc = subprocess.Popen([sys.executable, "-m", "ollamactl", "pick", "-n", "10000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader went away, as with `| head -1`
    stderr = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 1 and stderr == ""


def test_abbreviated_options_are_refused_as_the_typer_command_does():
    fake_fleet(1)
    result = run_pick("--mod", "llama3.2")
    assert result.returncode == 2 and "--mod" in result.stderr
    assert CliRunner().invoke(app, ["pick", "--mod", "llama3.2"]).exit_code == 2


def test_a_round_robin_pick_moves_its_cursor_without_rewriting_the_health_cache():
    fake_fleet(3)
    state_file = Fleet().locations.state_file
    before = (state_file.stat().st_ino, state_file.stat().st_mtime_ns, state_file.read_bytes())
    assert [run_pick().stdout for _ in range(4)] == ["http://gpu1:11434\n", "http://gpu2:11434\n",
                                                     "http://gpu3:11434\n", "http://gpu1:11434\n"]
    assert (state_file.stat().st_ino, state_file.stat().st_mtime_ns, state_file.read_bytes()) == before


@pytest.mark.parametrize("content", [b"", b"\x00garbage{", b"[1, 2]", b"\xfb" * 64])
def test_a_corrupt_cursor_file_restarts_the_rotation_quietly(content):
    fake_fleet(2)
    assert run_pick().stdout == "http://gpu1:11434\n"
    (Fleet().locations.state_dir / cursors.NAME).write_bytes(content)
    result = run_pick("-n", "3")
    assert (result.returncode, result.stdout.split(), result.stderr) == \
        (0, ["http://gpu1:11434", "http://gpu2:11434", "http://gpu1:11434"], "")
    assert run_pick().stdout == "http://gpu2:11434\n"


def test_a_pick_that_warns_reads_the_registry_once(monkeypatch):
    """Fleet.warn hides keys with the registry the pick already read, not by reading it again."""
    from ollamactl.core.registry import snapshot as registry_snapshot

    fake_fleet(2)
    state_file = Fleet().locations.state_file
    state_file.write_text(json.dumps(dict(json.loads(state_file.read_text()), latency={"gpu1-11434": "slow"})))
    reads = []
    load = registry_snapshot.load
    monkeypatch.setattr(registry_snapshot, "load", lambda *args: reads.append(args) or load(*args))
    fleet = Fleet()
    assert [i.url for i in fleet.pick(strategy="least-latency")] in (["http://gpu1:11434"], ["http://gpu2:11434"])
    assert any("1 malformed entry" in message for message in fleet.warnings) and len(reads) == 1


def test_a_least_busy_pick_reads_the_state_once(monkeypatch):
    """The live leases are counted from the state the pick already read, not from a second read."""
    from ollamactl.core.state.store import FileStore

    fake_fleet(2)
    reads = []
    read = FileStore.read
    monkeypatch.setattr(FileStore, "read", lambda self: reads.append(self) or read(self))
    assert [i.url for i in Fleet().pick(strategy="least-busy", count=2)] == ["http://gpu1:11434", "http://gpu2:11434"]
    assert len(reads) == 1


@pytest.mark.parametrize("argv", [
    ["--mod", "llama3.2"], ["--strat", "x"], ["--bogus"], ["-z"], ["--expalin"], ["-n"], ["--model"],
    ["-s", "nope"], ["-n", "0"], ["-n", "many"], ["--strict=yes"], ["extra"], ["--format", "yaml"],
    ["-t", "vision"], ["--model=a", "--bogus=1"],
])
def test_a_usage_error_reads_the_same_from_the_command_as_in_typer(argv):
    """Word for word, with the same suggestion (before: 10 of 15 lines read differently, and
    `--mod` suggested nothing on either route): the command's fast route either parses a line
    into the body's values, where the body refuses a bad value, or leaves the line to Typer."""
    fake_fleet(1)
    command = run_pick(*argv)
    typer_result = run("pick", *argv)
    assert (typer_result.exit_code, typer_result.stderr) == (command.returncode, command.stderr), argv
    assert command.returncode == 2 and command.stderr.startswith("ollamactl: error: ")
    assert command.stderr.count("\n") == 1


@pytest.mark.parametrize("argv, words", [
    (["pick", "-m"], "option '-m' requires an argument"), (["run"], "missing argument 'MODEL'"),
    (["pick", "-n", "x"], "invalid value for '--count' / '-n'"), (["list", "extra"], "got unexpected extra argument"),
    (["pick", "--strict=yes"], "option '--strict' does not take a value"), (["export"], "missing option '--format'"),
])
def test_a_usage_error_reads_as_every_other_error(argv, words):
    """Lower case after `error:`, as `no such option`, `no such command` and every message of
    ollamactl's own (before: Click's `Missing argument 'MODEL'`, `Invalid value for ...`)."""
    result = run(*argv)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"ollamactl: error: {words}"), result.stderr


def test_a_mistyped_option_or_command_gets_a_suggestion():
    fake_fleet(1)
    assert "did you mean --model?" in run_pick("--mod", "llama3.2").stderr
    assert "did you mean --strategy?" in run("pick", "--strat", "x").stderr
    assert "did you mean list?" in run("lisst").stderr and run("lisst").exit_code == 2
    assert "did you mean" not in run("pick", "--bogus").stderr
