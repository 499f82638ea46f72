"""Model management across the fleet: ps, pull, rm, sync, load, unload (and `models --diff`).

The commands parse, ask the Fleet for targets and results (its `survey()` plans; `pull`,
`delete_model`, `warm` and `running` act), and render: tables and summaries on stdout, notes on
stderr, `--json` for scripts; pulls show a live view (ollamactl.cli.models.pull_view). Ctrl-C anywhere
ends with exit 130 through cli.exits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from ollamactl import (
    DEFAULT_PULL_CONCURRENCY,
    NoInstanceError,
    OllamactlError,
    UsageError,
    checked_model,
    checked_models,
    checked_number,
)
from ollamactl.cli import output
from ollamactl.cli.commands import forwarded
from ollamactl.cli.completers import complete_instance, complete_model
from ollamactl.cli.confirm import confirm
from ollamactl.cli.context import fleet
from ollamactl.cli.help_style import setting_default
from ollamactl.cli.models.model_options import keep_alive_value
from ollamactl.cli.models.model_plans import plan_table, step_json

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl import Fleet, Instance, Outcome

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

REFS = typer.Argument(None, metavar="ID_OR_NAME", autocompletion=complete_instance, show_default=False)
MODEL = typer.Argument(..., metavar="MODEL", autocompletion=complete_model)
JSON = typer.Option(False, "--json", help="Print JSON (NDJSON progress events while pulling).")
TIMEOUT = typer.Option(None, "--timeout", metavar="S",
                       help="Give up on an instance that sends nothing for S seconds"
                            f" {setting_default('first_byte_timeout')}; one that stops answering at all is given"
                            " up sooner (the liveness_interval setting).")
CONCURRENCY = typer.Option(DEFAULT_PULL_CONCURRENCY, "--concurrency", "-c", metavar="N",
                           help="Downloads at once.")


# ---------------------------------------------------------------------------------------------
# Summaries shared by pull, sync, rm, load and unload


def json_summary(outcomes: Sequence[Outcome], done: str) -> str:
    return json.dumps({"event": "summary", "result": done, "outcomes": [
        {"id": o.instance.id, "model": o.model, "ok": o.ok, "absent": o.absent, "error": o.error}
        for o in outcomes]}, ensure_ascii=False, allow_nan=False)


def _report(outcomes: Sequence[Outcome], done: str, json_output: bool, absent_fails: bool = True) -> None:
    """A summary on stdout (a table, or one JSON line); exit 1 if any failed. `absent` counts as a
    failure unless `absent_fails` is False (rm: a model already gone is no error)."""
    failed = [o for o in outcomes if not o.ok and (absent_fails or not o.absent)]
    if json_output:
        sys.stdout.write(json_summary(outcomes, done) + "\n")
        sys.stdout.flush()
    else:
        def result(outcome: Outcome) -> Any:
            if outcome.ok:
                return output.styled(done, "green")
            if outcome.absent:
                return output.styled("not on this instance", "dim")
            return output.styled("failed: " + (outcome.error or "unknown error"), "red")

        rows = ((o.instance.name, o.model or "", result(o)) for o in outcomes)
        output.table(("INSTANCE", "MODEL", "RESULT"), rows, cut={"RESULT": 12, "MODEL": 16, "INSTANCE": 16})
    if failed:
        names = ", ".join(o.instance.id for o in failed)
        plural = "s" if len(outcomes) != 1 else ""
        raise OllamactlError(f"failed on {len(failed)} of {len(outcomes)} instance{plural} ({names})",
                             "the summary above says why")


def run_pulls(current: Fleet, jobs: list[tuple[Instance, str]], concurrency: int, json_output: bool,
              timeout: float | None = None) -> None:
    """Pull every (instance, model) job with the fitting progress view; report; exit 1 on failures."""
    from ollamactl import PullProgress
    from ollamactl.cli.models.pull_view import LineView, LiveView

    if sys.stdout.isatty() and not json_output:
        view: Any = LiveView([PullProgress(i, m) for i, m in jobs])
    else:
        view = LineView(json_output)
    view.start()
    try:
        outcomes = current.pull(jobs, concurrency=concurrency, on_progress=view.update, timeout=timeout)
    finally:
        view.stop()
    _report(outcomes, "pulled", json_output)


# ---------------------------------------------------------------------------------------------
# ps


@app.command()
@forwarded("ps")
def ps(refs: list[str] | None = REFS,
       json_output: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    r"""Show the loaded models on every enabled (or named) instance, from /api/ps.

    Columns: size in memory, the share in VRAM (the rest runs on CPU), context length, and the
    time until the keep-alive timer unloads it. Exit {ExitCode.FAILED} when some instance could not be asked.

    Example: ollamactl ps --json | jq -r '.[] | .id as $i | .models[]? | "\(.name) on \($i)"'
    """


# ---------------------------------------------------------------------------------------------
# pull


@app.command()
def pull(
    model: str = MODEL,
    refs: list[str] | None = REFS,
    everywhere: bool = typer.Option(False, "--all", "-a",
                                    help="Pull on every enabled instance of a fitting type, even where it is current."),
    concurrency: int = CONCURRENCY,
    timeout: float | None = TIMEOUT,
    json_output: bool = JSON,
) -> None:
    """Pull MODEL onto the named instances, else onto every enabled one of a fitting type that lacks it.

    "Lacks it" includes holding another build (digest) than the rest of the fleet. Pulls run in
    parallel with a live progress view on a terminal (plain lines, or NDJSON with --json,
    otherwise). One instance failing does not stop the others; exit {ExitCode.FAILED} if any failed,
    {ExitCode.INTERRUPTED} on Ctrl-C. The health cache learns each new copy at once, so `pick -m MODEL` can choose it.

    Example: ollamactl pull qwen3:4b && ollamactl pick -m qwen3:4b
    """
    checked_number("pull_concurrency", concurrency, "concurrency")  # before any network
    _check_timeout(timeout)
    name = checked_model(model)
    if refs and everywhere:
        raise UsageError("name instances or pass --all, not both")
    current = fleet()
    if refs:
        targets = current.targets(refs)
    else:
        targets = current.survey().pull_targets(name, everywhere)
        if not targets:
            output.message(f"{name} is already on every healthy enabled instance of a fitting type, at one"
                           " digest; --all pulls it again everywhere")
            if json_output:
                sys.stdout.write(json_summary([], "pulled") + "\n")
            return
    run_pulls(current, [(i, name) for i in targets], concurrency, json_output, timeout)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None:
        checked_number("first_byte_timeout", timeout, "timeout")


# ---------------------------------------------------------------------------------------------
# sync


@app.command()
def sync(
    models: list[str] | None = typer.Argument(None, metavar="MODEL", autocompletion=complete_model,
                                              show_default=False),
    source: str | None = typer.Option(None, "--from", metavar="ID_OR_NAME", autocompletion=complete_instance,
                                      help="Take the models (and their digests) from this instance."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and stop."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before pulling."),
    concurrency: int = CONCURRENCY,
    json_output: bool = JSON,
) -> None:
    """Make every enabled instance of a fitting type hold the same models at the same digest.

    The models: those named, else every model on --from, else every model in the fleet. The
    plan comes first (ok / pull: absent / update: another digest; embedding models only on
    embedding and both instances, chat models only on chat and both); --dry-run stops there.
    Then the pulls run as `pull` runs them (asks first on a terminal; needs --yes otherwise).

    Example: ollamactl sync --dry-run && ollamactl sync --yes
    """
    checked_number("pull_concurrency", concurrency, "concurrency")  # before any network
    wanted = checked_models(models or ())
    current = fleet()
    origin = current.find(source) if source is not None else None
    survey = current.survey(include=[origin] if origin else [])
    pool = survey.instances
    steps = survey.sync_plan(wanted, origin)
    if not steps:
        output.message("nothing to plan: no healthy instance of a fitting type holds or needs those models")
        return
    work = [s for s in steps if s.action != "ok"]
    if json_output:
        sys.stdout.write(json.dumps({"event": "plan", "steps": [step_json(s) for s in steps]}, allow_nan=False) + "\n")
        sys.stdout.flush()
    else:
        output.show(plan_table(steps, pool))
    pulls = sum(1 for s in work if s.action == "pull")
    output.message(f"{len(work)} to do: {pulls} pull{'s' if pulls != 1 else ''} of absent models,"
                   f" {len(work) - pulls} update{'s' if len(work) - pulls != 1 else ''} of another digest")
    if dry_run or not work:
        return
    confirm(f"Run {len(work)} pull{'s' if len(work) != 1 else ''}?", yes, "pull")
    by_id = {i.id: i for i in pool}
    run_pulls(current, [(by_id[s.instance_id], s.model) for s in work], concurrency, json_output)


# ---------------------------------------------------------------------------------------------
# rm


@app.command("rm")
def remove_model(
    model: str = MODEL,
    refs: list[str] | None = REFS,
    everywhere: bool = typer.Option(False, "--all", "-a", help="Remove it from every enabled instance."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(False, "--force", help="Remove even the last copy in the fleet."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Delete MODEL from the named instances (or --all); asks on a terminal, needs --yes otherwise.

    An instance without the model is reported, not an error. Removing the last copy in the
    fleet is refused (exit {ExitCode.USAGE}, naming who holds it) unless --force.

    Example: ollamactl rm qwen2.5:7b gpu2 --yes
    """
    name = checked_model(model)
    if bool(refs) == everywhere:
        raise UsageError("name the instances to remove it from, or pass --all", f"e.g. ollamactl rm {name} gpu2")
    if not yes and not sys.stdin.isatty():
        raise UsageError("refusing to remove without confirmation: stdin is not a terminal", "pass --yes")
    current = fleet()
    named = current.targets(refs) if refs else []
    survey = current.survey(include=named)  # refuses first when every instance is disabled, without offering --all
    targets = named or current.targets()
    holding, others = survey.removal(name, targets, force)
    if holding:
        confirm(f"Remove {name} from {', '.join(i.id for i in holding)}?", yes, "remove")
    deleted = current.delete_model(name, holding) if holding else []
    by_id = {o.instance.id: o for o in [*deleted, *others]}
    outcomes = [by_id[i.id] for i in targets]
    _report(outcomes, "removed", json_output, absent_fails=False)
    if not any(o.ok for o in outcomes):
        raise OllamactlError(f"{name} is on none of the instances named", "see `ollamactl models`")


# ---------------------------------------------------------------------------------------------
# load / unload


def _warm(model: str, refs: list[str] | None, load: bool, keep_alive: str | None, json_output: bool,
          timeout: float | None) -> None:
    _check_timeout(timeout)
    name = checked_model(model)
    value = keep_alive_value(keep_alive)
    current = fleet()
    survey = current.survey(*(refs or ()))
    if refs:
        targets = survey.instances
    else:
        targets = survey.holders(name) if load else survey.loaded_on(name)
    if not targets:
        if load:
            raise NoInstanceError(f"{name} is on no healthy enabled instance", f"pull it first: ollamactl pull {name}")
        output.message(f"{name} is not loaded on any healthy enabled instance")
        if json_output:
            sys.stdout.write(json_summary([], "unloaded") + "\n")
        return
    outcomes = current.warm(name, targets, survey.kinds([name])[name], load=load, keep_alive=value, timeout=timeout)
    _report(outcomes, "loaded" if load else "unloaded", json_output)


@app.command()
def load(
    model: str = MODEL,
    refs: list[str] | None = REFS,
    keep_alive: str | None = typer.Option(None, "--keep-alive", metavar="DURATION",
                                          help="How long it stays loaded: 10m, 1h, 300 (s), -1 (for ever)."),
    timeout: float | None = TIMEOUT,
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Warm MODEL on the named instances, else on every healthy enabled one that holds it, in parallel.

    Sends an empty generate (an empty embed for embedding models), as the Ollama API loads a
    model. The `warm` strategy of `pick` sees the change at once. Exit {ExitCode.FAILED} if any failed.

    Example: ollamactl load llama3.2 --keep-alive 1h && ollamactl ps
    """
    _warm(model, refs, True, keep_alive, json_output, timeout)


@app.command()
def unload(
    model: str = MODEL,
    refs: list[str] | None = REFS,
    timeout: float | None = TIMEOUT,
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Free MODEL's memory on the named instances, else wherever it is loaded (keep_alive 0).

    Example: ollamactl unload qwen2.5:7b && ollamactl ps
    """
    _warm(model, refs, False, None, json_output, timeout)
