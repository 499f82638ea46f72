"""How health results look: the table (fitted to the terminal's width), JSON rows, and the watch view.

Each instance is shown by its name, and the table never wraps a cell: on a narrow terminal it drops
the least useful columns and cuts long values with an ellipsis, so each instance stays on one line.
The watch view keeps one row per instance, updated as that instance's own probe ends; a probe
running for a while shows `checking… N s` on its row while the other rows keep changing.
"""

from __future__ import annotations

import time

from ollamactl import Instance
from ollamactl.cli import output
from ollamactl.model_names import normalise_model
from ollamactl.timefmt import age, clock, iso_utc

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence
    from typing import Any

    from ollamactl import HealthResult

Row = tuple[Instance, "HealthResult | None", "float | None"]  # instance, last result, probe running since
COLUMNS = ("INSTANCE", "URL", "TYPE", "STATUS", "LATENCY", "AGE", "VERSION", "MODELS", "LOADED", "ERROR")
DROPPED_FIRST = ("TYPE", "VERSION", "LOADED", "URL", "AGE", "MODELS")  # when the terminal is too narrow
CUT_TO = {"ERROR": 10, "INSTANCE": 16}  # these may be cut (with an ellipsis) down to this many characters
CHECKING_AFTER_S = 1.0  # a probe running longer than this shows `checking… N s` on its row


def json_row(instance: Instance, result: HealthResult, ejected: dict[str, float], now: float) -> dict[str, Any]:
    return {
        "id": instance.id,
        "name": instance.name,
        "url": instance.url,
        "type": instance.type,
        "enabled": instance.enabled,
        "healthy": result.healthy,
        "error": result.error,
        "latency_ms": result.latency_ms,
        "version": result.version,
        "models": [normalise_model(m["name"]) for m in result.models],
        "loaded": None if result.loaded is None else [normalise_model(n) for n in result.loaded],
        "checked_at": iso_utc(result.checked_at),
        "age_s": round(max(0.0, now - result.checked_at), 1),
        "ejected_until": iso_utc(ejected.get(instance.id)),
    }


def _status(result: HealthResult | None, running: float | None, until: float | None, now: float) -> output.Styled:
    busy = None if running is None else now - running
    if busy is not None and busy >= CHECKING_AFTER_S:
        return output.styled(f"checking… {busy:.0f} s", "yellow")
    if result is None:
        return output.styled("checking…", "dim")
    if until is not None:
        return output.styled("ejected until " + clock(until), "yellow")
    return output.styled("healthy", "green") if result.healthy else output.styled("unhealthy", "red")


def _cells(row: Row, ejected: dict[str, float], now: float) -> dict[str, Any]:
    instance, result, running = row
    cells: dict[str, Any] = {"INSTANCE": instance.name, "URL": instance.url,
                             "TYPE": instance.type,
                             "STATUS": _status(result, running, ejected.get(instance.id), now)}
    if result is None:
        return cells
    if result.loaded is None:
        loaded = "?" if result.healthy else ""
    else:
        loaded = ", ".join(normalise_model(n) for n in result.loaded) or "-"
    cells.update({
        "LATENCY": "" if result.latency_ms is None else f"{result.latency_ms:.1f} ms",
        "AGE": age(now - result.checked_at),
        "VERSION": result.version or "",
        "MODELS": str(len(result.models)) if result.healthy else "",
        "LOADED": loaded,
        "ERROR": result.error or "",
    })
    return cells


def health_table(rows: Sequence[Row], ejected: dict[str, float], title: str | None = None,
                 now: float | None = None) -> output.Grid:
    """The rows as a table: each instance by its name (its id when it has none), one line each
    however narrow the terminal (the least useful columns go first, then errors and names are cut)."""
    now = time.time() if now is None else now
    cells = [_cells(row, ejected, now) for row in rows]
    return output.Grid(COLUMNS, ([c.get(name, "") for name in COLUMNS] for c in cells), title,
                       drop=DROPPED_FIRST, cut=CUT_TO)


class WatchView:
    """What `health --watch` shows: each instance's last result and whether a probe is running."""

    def __init__(self, instances: Sequence[Instance]):
        self.instances = list(instances)
        self.latest: dict[str, HealthResult | None] = {i.id: None for i in self.instances}
        self.running: dict[str, float] = {}  # instance id -> epoch its probe began

    def follow(self, instances: Sequence[Instance]) -> None:
        """Show `instances` from now on: rows of new ones say `checking…`, a changed one loses its
        last result, a removed one goes."""
        if list(instances) == self.instances:
            return
        before = {i.id: i for i in self.instances}
        self.instances = list(instances)
        self.latest = {i.id: self.latest.get(i.id) if before.get(i.id) == i else None for i in self.instances}
        self.running = {i: since for i, since in self.running.items() if i in self.latest}

    def instance(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances if i.id == instance_id), None)

    def started(self, instance_id: str) -> None:
        self.running[instance_id] = time.time()

    def finished(self, result: HealthResult) -> None:
        if result.id in self.latest:  # not one removed while its probe ran
            self.latest[result.id] = result
        self.running.pop(result.id, None)

    def rows(self) -> list[Row]:
        return [(i, self.latest[i.id], self.running.get(i.id)) for i in self.instances]

    def table(self, ejected: dict[str, float], title: str | None = None, now: float | None = None) -> output.Grid:
        return health_table(self.rows(), ejected, title, now)
