"""Benchmark: the cost of one `ollamactl pick` call against a bare interpreter, measured in one run.

Sets up a private registry of 4 instances with a fresh health cache (so pick does no network I/O),
then times RUNS calls of each command and prints the medians and the ratios. Target: pick <= 3x
`python -c pass`.

    python bench/pick_latency.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from _support import median_ms, ollamactl_command, precompile


def prepare(env: dict[str, str]) -> None:
    setup = (
        "import time\n"
        "from ollamactl import Fleet\n"
        "fleet = Fleet()\n"
        "ids = [fleet.add(f'gpu{n}').id for n in range(1, 5)]\n"
        "def fill(data):\n"
        "    for i in ids:\n"
        "        data['health'][i] = {'url': 'http://' + i.rsplit('-', 1)[0] + ':11434', 'healthy': True,\n"
        "            'error': None, 'latency_ms': 5.0, 'version': '0.12.6', 'loaded': [], 'checked_at': time.time(),\n"
        "            'models': [{'name': 'llama3.2:latest', 'digest': 'd' * 64, 'size': 1}]}\n"
        "fleet.store.update(fill)\n"
    )
    subprocess.run([sys.executable, "-c", setup], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OLLAMACTL_CONFIG=os.path.join(tmp, "instances.toml"),
                   OLLAMACTL_STATE_DIR=os.path.join(tmp, "state"))
        prepare(env)
        precompile()
        pick = ollamactl_command()
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("python -c 'import typer'", [sys.executable, "-c", "import typer"]),
            ("ollamactl pick", pick + ["pick"]),
            ("ollamactl pick -m llama3.2 -t chat", pick + ["pick", "-m", "llama3.2", "-t", "chat"]),
            ("ollamactl pick -s random", pick + ["pick", "-s", "random"]),
            ("ollamactl --version (Typer)", pick + ["--version"]),
        ]
        for _, command in rows:  # warm the page cache and .pyc files
            subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=True)
        results = {label: median_ms(command, args.runs, env) for label, command in rows}
    base, typer_ms = results["python -c pass"], results["python -c 'import typer'"]
    print(f"median of {args.runs} runs each of {' '.join(pick)}")
    print(f"{'command':<38} {'ms':>7} {'x pass':>7} {'x import typer':>15}")
    for label, ms in results.items():
        print(f"{label:<38} {ms:7.1f} {ms / base:7.2f} {ms / typer_ms:15.2f}")
    verdict = "meets" if results["ollamactl pick"] <= 3 * base else "MISSES"
    print(f"target pick <= 3x python -c pass: {verdict} ({results['ollamactl pick'] / base:.2f}x)")


if __name__ == "__main__":
    main()
