"""Plans of which model goes where, shown: the plan table of `sync` and `models --diff`. Typer-free
(`models` has a route without Typer, see cli/fast_route.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ollamactl.cli import output

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl import Fleet, HealthResult, Instance, Step

ACTION_STYLE = {"ok": "green", "pull": "yellow", "update": "yellow"}


def plan_table(steps: Sequence[Step], instances: Sequence[Instance]) -> output.Grid:
    """Models down, instances across (by name): ok / pull / update, `-` where the type does not serve it."""
    columns = [i for i in instances if any(s.instance_id == i.id for s in steps)]
    cells = {(s.model, s.instance_id): s for s in steps}
    rows = []
    for model in dict.fromkeys(s.model for s in steps):
        row: list[Any] = [model]
        for instance in columns:
            step = cells.get((model, instance.id))
            row.append(output.styled("-", "dim") if step is None
                       else output.styled(step.action, ACTION_STYLE[step.action]))
        rows.append(row)
    return output.Grid(("MODEL", *(i.name for i in columns)), rows, cut={"MODEL": 20})


def step_json(step: Step) -> dict[str, Any]:
    return {"id": step.instance_id, "model": step.model, "action": step.action, "have": step.have,
            "want": step.want}


def show_diff(current: Fleet, results: dict[str, HealthResult], json_output: bool) -> None:
    """`models --diff`: the models not on every instance of a fitting type, or not at one digest."""
    survey = current.survey(results=results)
    kinds, steps = survey.drift()
    drifted = list(dict.fromkeys(s.model for s in steps))
    if json_output:
        output.print_json([{"model": model, "kind": kinds[model],
                            "instances": [step_json(s) for s in steps if s.model == model]} for model in drifted])
        return
    if not steps:
        output.message("every model is on every healthy instance of a fitting type, at one digest")
        return
    output.show(plan_table(steps, survey.instances))
    output.message("pull: absent there; update: another digest there. `ollamactl sync --dry-run` shows the plan,"
                   " `ollamactl sync` carries it out")
