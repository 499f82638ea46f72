"""Benchmark: `fastest` against round-robin (runs one after the other) and least-busy (runs at once).

Three simulated instances generate at different speeds (FAST, MEDIUM, SLOW tokens/s, reported in
eval_count/eval_duration as Ollama does). `ollamactl run` asks each for TOKENS tokens. First three
round-robin runs, so that `fastest` has seen every instance (it learns from ordinary runs; no
`bench` is needed). Then, alternating for REPEAT rounds: RUNS sequential runs with each of
`fastest` and `round-robin` (target: fastest at most 0.6x the time), and RUNS runs PARALLEL at a
time with each of `fastest` and `least-busy`, every instance capped at MAX leases (as a server
with OLLAMA_NUM_PARALLEL=MAX queues the rest), where `fastest` must not be slower: it spreads, as
each lease it holds makes an instance's expected time longer. Prints medians and the ratios.

    python bench/fastest_routing.py [--runs 12] [--parallel 6] [--max-inflight 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess

from _support import ollamactl_command, private_registry, register, simulated, wall_s

FAST, MEDIUM, SLOW = 400.0, 100.0, 25.0  # tokens per second
TOKENS = 48


def one_run(strategy: str) -> None:
    subprocess.run(ollamactl_command() + ["run", "llama3.2", "hi", "-s", strategy, "-o", f"num_predict={TOKENS}"],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--max-inflight", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    configs = [{"name": name, "token_rate": rate} for name, rate in (("fast", FAST), ("medium", MEDIUM),
                                                                     ("slow", SLOW))]
    sequential: dict[str, list[float]] = {"fastest": [], "round-robin": []}
    concurrent: dict[str, list[float]] = {"fastest": [], "least-busy": []}
    with simulated(*configs) as urls, private_registry():
        register(urls)
        from ollamactl.core.fleet import Fleet

        for _ in range(3):
            one_run("round-robin")  # every instance measured once, by ordinary runs
        for _ in range(args.repeat):
            for strategy, seconds in sequential.items():
                seconds.append(wall_s(one_run, [strategy] * args.runs, 1))
        for instance in Fleet().instances():
            Fleet().update(instance.id, max_inflight=args.max_inflight)
        for _ in range(args.repeat):
            for strategy, seconds in concurrent.items():
                seconds.append(wall_s(one_run, [strategy] * args.runs, args.parallel))
    print(f"3 simulated instances at {FAST:g}, {MEDIUM:g} and {SLOW:g} tokens/s; {TOKENS} tokens a run;"
          f" medians of {args.repeat} alternating rounds")
    for title, rounds, baseline, target in (
            (f"{args.runs} runs one after the other", sequential, "round-robin", "<= 0.6"),
            (f"{args.runs} runs, {args.parallel} at a time, max_inflight {args.max_inflight}", concurrent,
             "least-busy", "<= 1.0")):
        medians = {strategy: statistics.median(seconds) for strategy, seconds in rounds.items()}
        print(title)
        for strategy, seconds in rounds.items():
            listed = ", ".join(f"{s:.2f}" for s in seconds)
            print(f"  {strategy:<12} median {medians[strategy]:6.2f} s  (rounds: {listed})")
        print(f"  fastest / {baseline}: {medians['fastest'] / medians[baseline]:.2f} (target {target})")


if __name__ == "__main__":
    main()
