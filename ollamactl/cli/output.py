"""Output: the only module that imports rich. Tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def console(stderr: bool = False):  # type: ignore[no-untyped-def]
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal rich would wrap at 80 columns; keep rows whole for grep and less.
    width = None if stream.isatty() else 250
    return Console(file=stream, width=width, soft_wrap=False, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    from rich.table import Table

    grid = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) if not hasattr(cell, "__rich__") else cell
                       for cell in row))
    console().print(grid)


def instances(items: Sequence[Any]) -> None:
    table(
        ("ID", "NAME", "URL", "TYPE", "ENABLED", "WEIGHT", "AUTH"),
        ((i.id, i.name, i.url, i.type, "yes" if i.enabled else "no", i.weight, i.auth) for i in items),
    )


def message(text: str) -> None:
    """A human-facing line on stderr (data stays alone on stdout)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class ProgressBar:
    """A transient progress bar on stderr: `update(done)`, then `stop()`."""

    def __init__(self, label: str, total: int | None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def update(self, done: int) -> None:
        self._bar.update(self._task, completed=done)

    def stop(self) -> None:
        self._bar.stop()
