"""No limit on what a server may send, before issue 11 (point 3): endless bodies, a hundred thousand
models. Every answer now has a cap ("answer too large (> N MB)"), memory stays small, and the health
cache keeps at most what routing needs, so one hostile instance cannot make every `pick` slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cli_helpers import at_the_end, ok, run
from hostile_server import answer, endless, ollama_like

from ollamactl.core.fleet import Fleet
from ollamactl.core.health import probe as health
from ollamactl.core.state.schema import MAX_MODELS

# Runs the CLI in a child and reports the child's peak memory (KiB on Linux) on its last stderr line:
# its own address space's high-water mark (VmHWM), not ru_maxrss, which Linux carries over exec from
# the process that spawned it (a pytest worker grown past 100 MB made every child look that big).
_MEASURED = """
import resource

def peak():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

""" + at_the_end('sys.stderr.write(f"\\nMAXRSS {peak()}\\n")') + """
from ollamactl.cli.launcher import main
main(sys.argv[1:])
"""


def measured(*args: str, stdin: str | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """(the finished command, its peak RSS in MB)."""
    result = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, input=stdin,
                            env=os.environ.copy(), timeout=120)
    peak_kib = int(result.stderr.rsplit("MAXRSS ", 1)[1])
    return result, peak_kib / 1024


def test_health_against_an_endless_tags_body_stays_small(hostile):
    server = hostile({**ollama_like(), "/api/tags": endless()})
    Fleet().add(server.url, name="endless")
    result, peak_mb = measured("health", "--timeout", "5")
    assert result.returncode == 3, result.stderr
    assert f"answer too large (> {health.BODY_LIMIT >> 20} MB)" in result.stdout
    assert peak_mb < 100, peak_mb  # before: 1.3 GB


def test_embed_against_an_endless_answer_stays_small(hostile):
    server = hostile({**ollama_like(names=("nomic-embed-text:latest",)),
                      "/api/embed": endless(b'{"embeddings":[[', b"0.125," * 10_000)})
    Fleet().add(server.url, name="endless")
    result, peak_mb = measured("embed", "nomic-embed-text", "one", "two")
    assert result.returncode == 1 and "answer too large (> 1.5 MB)" in result.stderr, result.stderr
    assert result.stdout == ""
    assert peak_mb < 100, peak_mb  # before: 5.5 GB in 30 s


def test_run_against_an_endless_line_fails_in_words(hostile):
    server = hostile({**ollama_like(), "/api/generate": endless(b'{"response":"', b"a" * 65536)})
    Fleet().add(server.url, name="endless")
    result = run("run", "llama3.2", "hi")
    assert result.exit_code == 1 and "answer too large (> 8 MB)" in result.stderr, result.stderr


def test_an_instance_with_a_hundred_thousand_models_is_capped_with_a_warning(hostile, sim, isolated_env):
    names = [f"m{i}" for i in range(100_000)]
    huge = hostile({**ollama_like(), "/api/tags": answer({"models": [{"name": n} for n in names]})})
    normal = sim.add()
    Fleet().add(huge.url, id="huge")
    Fleet().add(normal.url, id="normal")
    refreshed = run("refresh")
    assert refreshed.exit_code == 0, refreshed.stderr
    assert f"huge lists 100000 models; only the first {MAX_MODELS} are kept" in refreshed.stderr
    state = isolated_env["state"] / "state.json"
    assert state.stat().st_size < 500_000  # before: 110 MB, read by every pick
    cached = json.loads(state.read_text())["health"]
    assert len(cached["huge"]["models"]) == MAX_MODELS
    assert ok("pick", "-m", "m5").stdout.strip() == huge.url
    ok("disable", "huge")
    assert ok("pick").stdout.strip() == normal.url
    listing = json.loads(ok("models", "--json").stdout)
    assert [m["model"] for m in listing] == ["llama3.2:latest", "nomic-embed-text:latest", "qwen2.5:7b"]


def test_a_disabled_instance_cache_entry_is_not_read(sim, isolated_env):
    good = sim.add()
    Fleet().add(good.url, name="good")
    Fleet().add("127.0.0.1:9", id="off")
    ok("disable", "off")
    ok("refresh")
    state = isolated_env["state"] / "state.json"
    data = json.loads(state.read_text())
    data["health"]["off"] = {"url": "http://127.0.0.1:9", "healthy": True, "models": 5, "checked_at": "x"}
    state.write_text(json.dumps(data))
    result = ok("pick")
    assert result.stdout.strip() == good.url and result.stderr == ""
