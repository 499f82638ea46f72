"""`ollamactl bench`: measure how fast each instance generates, rank them, and set weights from it."""

from __future__ import annotations

import sys
from typing import Any

import typer

from ollamactl import BENCH_TOKENS, ExitCode
from ollamactl.cli import output
from ollamactl.cli.completers import complete_model
from ollamactl.cli.confirm import confirm
from ollamactl.cli.context import fleet

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

BAR_WIDTH = 20


@app.command()
def bench(
    model: str | None = typer.Option(None, "--model", "-m", metavar="MODEL", autocompletion=complete_model,
                                     help="The model to measure (default: the chat model most instances hold)."),
    prompt: str | None = typer.Option(None, "--prompt", metavar="TEXT", help="The prompt sent to each instance."),
    tokens: int = typer.Option(BENCH_TOKENS, "--tokens", metavar="N",
                               help="Tokens to generate per request (num_predict)."),
    repeat: int = typer.Option(1, "--repeat", metavar="N", help="Requests per instance, one after the other."),
    set_weights: bool = typer.Option(False, "--set-weights",
                                     help="Write registry weights proportional to the measured speed (asks)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --set-weights: do not ask."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array, fastest first."),
) -> None:
    """Measure each healthy instance's generation speed for a model, all at once, fastest first.

    Speed is Ollama's own eval_count/eval_duration; FIRST TOKEN is from sending to the first text
    (a cold model's load is in it: COLD says so). Results are kept like ordinary runs', so the
    `fastest` strategy uses them. Exit {ExitCode.FAILED} when an instance could not be measured.

    Example: ollamactl bench -m llama3.2 --repeat 3 --set-weights
    """
    current = fleet()
    results = current.bench(model, prompt=prompt, tokens=tokens, repeat=repeat)
    if json_output:
        output.print_json([result.public() for result in results])
    else:
        _table(results)
    if set_weights:
        _set_weights(current, results, yes)
    if any(result.error for result in results):
        raise typer.Exit(ExitCode.FAILED)


def _table(results: list[Any]) -> None:
    top = max((r.tokens_per_second or 0.0 for r in results), default=0.0)
    rows = []
    for result in results:
        tps = result.tokens_per_second
        bar = "█" * max(1, round(BAR_WIDTH * tps / top)) if tps and top else ""
        rows.append((result.name, result.url, result.model, "-" if tps is None else f"{tps:.1f}",
                     "-" if result.first_token_s is None else f"{result.first_token_s:.2f}s",
                     "yes" if result.cold else "", bar if not result.error else result.error))
    columns = ("NAME", "URL", "MODEL", "TOK/S", "FIRST TOKEN", "COLD", "SPEED")
    (output.table if sys.stdout.isatty() else output.plain_table)(columns, rows)


def _set_weights(current: Any, results: list[Any], yes: bool) -> None:
    from ollamactl import speed_weights

    wanted = speed_weights(results)
    if not wanted:
        output.say("no instance was measured: the weights stay as they are")
        return
    now = {i.id: i for i in current.instances()}
    changes = {iid: weight for iid, weight in wanted.items() if iid in now and now[iid].weight != weight}
    if not changes:
        output.say("weights already match the measured speeds; nothing to change")
        return
    for iid, weight in changes.items():
        output.message(f"  {now[iid].name}: weight {now[iid].weight} -> {weight}")
    confirm(f"Set the weights of {len(changes)} instance(s) as shown?", yes, "change the weights")
    for iid, weight in changes.items():
        current.update(iid, weight=weight)
    output.say(f"weights set for {len(changes)} instance(s); the weighted strategy and the exports use them")
