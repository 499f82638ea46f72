"""How much does `ollamactl run` cost over talking to Ollama directly?

One simulated instance (in a child process) streams 5,000 tokens as fast as it can. In the same run
we time (a) a minimal direct httpx stream of the same request in this process and (b) `ollamactl run`
as a subprocess whose stdout is a pipe this script reads. Printed: the throughput ratio from the first
token to the last (target >= 0.8), and the time to first token that `ollamactl run` adds, next to the
bare start-up costs of `python -c pass`, `ollamactl --version` and the run process's imports
(target: the first token within that start-up + 10 ms).

    python bench/proxy_overhead.py [--tokens 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time

from _support import ollamactl_command, private_registry, register, simulated, venv_python

MODEL = "llama3.2"
PROMPT = "tell me a long story"


def direct(url: str) -> tuple[float, float, int]:
    """(time to first token, first to last token, characters) for a minimal httpx stream."""
    import httpx

    body = {"model": MODEL, "prompt": PROMPT}
    text = []
    started = time.perf_counter()
    first = None
    with httpx.Client(trust_env=False, timeout=None) as client:
        with client.stream("POST", url + "/api/generate", json=body) as response:
            buffer = b""
            for chunk in response.iter_raw():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line:
                        piece = json.loads(line).get("response", "")
                        if piece and first is None:
                            first = time.perf_counter()
                        text.append(piece)
    ended = time.perf_counter()
    return first - started, ended - first, len("".join(text))


def through_ollamactl() -> tuple[float, float, int]:
    """(time to first output byte, first to last byte, bytes) for `ollamactl run` into a pipe."""
    started = time.perf_counter()
    process = subprocess.Popen([*ollamactl_command(), "run", MODEL, PROMPT], stdout=subprocess.PIPE,
                               env=os.environ.copy())
    fd = process.stdout.fileno()
    first = None
    size = 0
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        if first is None:
            first = time.perf_counter()
        size += len(data)
    ended = time.perf_counter()
    if process.wait() != 0:
        raise SystemExit(f"ollamactl run failed with exit code {process.returncode}")
    return first - started, ended - first, size


# What `ollamactl run` does before it looks at the request: its start-up, as opposed to its work.
# The interpreter and what the launcher's Typer-free route imports for `run` (cli/fast_route.py;
# httpx imports httpcore only when the first client is built, so it is named here).
RUN_IMPORTS = ("import ollamactl.cli.launcher, ollamactl.cli.fast_route, ollamactl.cli.spec_parser,"
               " ollamactl.cli.command_specs, ollamactl.cli.run_stream, ollamactl.core.generate,"
               " ollamactl.core.routing, httpx, httpcore")
ALLOWANCE_MS = 10.0  # target: the first token within the run process's start-up + this


def startup(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=os.environ.copy())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    starts: dict[str, list[float]] = {"pass": [], "version": [], "run": []}
    commands = {"pass": [venv_python(), "-c", "pass"], "version": [*ollamactl_command(), "--version"],
                "run": [venv_python(), "-c", RUN_IMPORTS]}
    with private_registry(), simulated({"tokens": args.tokens}) as urls:
        register(urls)
        through_ollamactl()  # warm caches (page cache, .pyc) before timing
        direct(urls[0])
        runs_direct, runs_cli = [], []
        for _ in range(args.repeat):  # interleaved, start-ups too, so drift hits all alike
            runs_direct.append(direct(urls[0]))
            runs_cli.append(through_ollamactl())
            for name, command in commands.items():
                starts[name].append(startup(command))
    python_start, cli_start, run_start = (statistics.median(starts[name]) for name in ("pass", "version", "run"))

    d_ttft = statistics.median(r[0] for r in runs_direct)
    c_ttft = statistics.median(r[0] for r in runs_cli)
    d_stream, c_stream = statistics.median(r[1] for r in runs_direct), statistics.median(r[1] for r in runs_cli)
    d_best, c_best = min(r[1] for r in runs_direct), min(r[1] for r in runs_cli)
    ratio, ratio_best = d_stream / c_stream, d_best / c_best
    print(f"tokens per run:                     {args.tokens} (median of {args.repeat} interleaved runs each)")
    print(f"direct httpx stream:                {args.tokens / d_stream:10.0f} tokens/s"
          f"   first token {d_ttft * 1e3:7.1f} ms")
    print(f"ollamactl run (pipe):               {args.tokens / c_stream:10.0f} tokens/s"
          f"   first token {c_ttft * 1e3:7.1f} ms (from process start)")
    verdict = "OK" if ratio >= 0.8 else "BELOW TARGET"
    print(f"throughput ratio run/direct:        {ratio:10.2f}   (target >= 0.8) {verdict}")
    print(f"  same, best run of each:           {ratio_best:10.2f}   (less sensitive to a busy machine;"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"added time to first token:          {(c_ttft - d_ttft) * 1e3:10.1f} ms")
    print(f"  start-up `python -c pass`:        {python_start * 1e3:10.1f} ms")
    print(f"  start-up `ollamactl --version`:   {cli_start * 1e3:10.1f} ms")
    print(f"  start-up of the run process:      {run_start * 1e3:10.1f} ms (interpreter and the imports of"
          " run's Typer-free route)")
    added = c_ttft - d_ttft
    print(f"  added beyond that start-up:       {(added - run_start) * 1e3:10.1f} ms (registry + cache read,"
          " cursor write, connect, first line)")
    verdict = "met" if (added - run_start) * 1e3 <= ALLOWANCE_MS else "MISSED"
    print(f"target added time to first token <= start-up of the run process + {ALLOWANCE_MS:g} ms: {verdict}")


if __name__ == "__main__":
    main()
