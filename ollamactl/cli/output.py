"""Everything ollamactl shows a person: the only module that imports rich, the one sanitiser for
untrusted text, and the one channel for messages, warnings and errors on stderr.

Data goes to stdout (tables for people, JSON for scripts); every message goes to stderr through
`say`, `warn` or `error`. Text that came from a server, the registry file or the user is passed
through `clean` before it reaches a terminal: control characters and escape sequences are made
visible, and rich tables receive `Text` objects, so markup in a name is shown, never interpreted.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Sequence
    from typing import Any

PREFIX = "ollamactl"
MAX_CELL = 200  # characters of one untrusted value shown in a table cell
MAX_MESSAGE = 4000  # characters of one message line (an error listing every instance's reason)
_VISIBLE = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\x1b", "\x07": "\\a"}


def clean(text: Any, limit: int | None = MAX_CELL, keep: str = "") -> str:
    """`text` made safe for a terminal: control characters (C0, DEL, C1, bidi overrides) except those
    in `keep` shown as escapes, then cut to `limit` characters with an ellipsis. Markup is left as
    text: rich receives `Text`, and consoles are made with markup off."""
    text = str(text)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch in keep else _visible(ch) for ch in text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _cell(value: Any, limit: int | None = MAX_CELL) -> str:
    """An untrusted table cell as text: `clean`, with None shown as an empty cell (rich or plain)."""
    return "" if value is None else clean(value, limit)


def _visible(ch: str) -> str:
    code = ord(ch)
    return _VISIBLE.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


unsaid = False  # a warning stderr could not take (a reader that left, a full disk): the command fails


def _write(line: str, vital: bool = False) -> None:
    """`line` on stderr; when it cannot be written, a `vital` one (a warning) is remembered in
    `unsaid`, a note (progress, "simulator stopped") is let go."""
    global unsaid
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr broken or closed: nothing else can be said
        unsaid = unsaid or vital


def say(text: str) -> None:
    """A line for the person running the command (progress, --verbose), on stderr."""
    _write(f"{PREFIX}: {clean(text, MAX_MESSAGE)}")


def message(text: str) -> None:
    """A plain human-facing line on stderr without the program prefix (tables' footers, explanations)."""
    _write(clean(text, MAX_MESSAGE))


def warn(text: str) -> None:
    _write(f"{PREFIX}: warning: {clean(text, MAX_MESSAGE)}", vital=True)


def error(text: str) -> None:
    _write(f"{PREFIX}: error: {clean(text, MAX_MESSAGE)}")


def answer_text(text: str, terminal: bool) -> str:
    """A model's answer text for a stream: exact for a pipe or file; on a terminal, escape sequences
    and control characters other than newlines and tabs are made visible (a server must not be
    able to retitle, clear or spoof the user's terminal)."""
    return clean(text, None, keep="\n\t") if terminal else text


def console(stderr: bool = False):  # type: ignore[no-untyped-def]
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal rich would wrap at 80 columns; keep rows whole for grep and less.
    width = None if stream.isatty() else 250
    return Console(file=stream, width=width, soft_wrap=False, highlight=False, markup=False, emoji=False)


def text(value: Any, style: str | None = None, limit: int | None = MAX_CELL):  # type: ignore[no-untyped-def]
    """An untrusted value as a rich Text cell: cleaned, never parsed as markup."""
    from rich.text import Text

    if isinstance(value, Text):
        return value
    return Text(_cell(value, limit), style=style or "")


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()


def grid(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,  # type: ignore[no-untyped-def]
         no_wrap: bool = False):
    """A borderless rich table whose every cell is an untrusted value made safe by `text`.
    `no_wrap`: every cell stays on one line, cut with an ellipsis when the terminal is too narrow."""
    from rich.table import Table

    table = Table(title=None if title is None else text(title, limit=None), box=None, header_style="bold",
                  pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=no_wrap)
    for row in rows:
        table.add_row(*(text(cell) for cell in row))
    return table


def plain_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table laid out as `grid` lays it out off a terminal, without rich (for commands that start
    fast): columns two spaces apart, padded by display width (a wide character takes two cells),
    every row whole (never cut to a width), every cell through `_cell` as in `text`."""
    lines = [list(columns)] + [[_cell(value) for value in row] for row in rows]
    cells = [[_cells(text) for text in line] for line in lines]
    widths = [max(sizes) for sizes in zip(*cells, strict=True)]
    sys.stdout.write("".join("  ".join(text + " " * (widths[n] - size[n]) for n, text in enumerate(line))
                             .rstrip() + "\n" for line, size in zip(lines, cells, strict=True)))
    sys.stdout.flush()


def _cells(text: str) -> int:
    """Terminal cells `text` takes: East Asian wide and full-width characters two, combining marks none."""
    if text.isascii():
        return len(text)
    from unicodedata import combining, east_asian_width

    return sum(0 if combining(ch) else 2 if east_asian_width(ch) in "WF" else 1 for ch in text)


def width() -> int:
    """The width tables on stdout are laid out for: the terminal's, or wide off a terminal."""
    return console().width


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    console().print(grid(columns, rows, title))


def instances(items: Sequence[Any]) -> None:
    """The registry's table (`list`): rich on a terminal; off one (scripts, pipes) the same layout
    as plain text, so a script's `list` loads no rich."""
    columns = ("ID", "NAME", "URL", "TYPE", "ENABLED", "WEIGHT", "TIER", "MAX", "AUTH")
    rows = ((i.id, i.name, i.url, i.type, "yes" if i.enabled else "no", i.weight, i.tier_name,
             i.max_inflight or "-", i.auth) for i in items)
    (table if sys.stdout.isatty() else plain_table)(columns, rows)


class ProgressBar:
    """A transient progress bar on stderr: `update(done)`, then `stop()`."""

    def __init__(self, label: str, total: int | None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn(clean(label), markup=False), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(clean(label), total=total)

    def update(self, done: int) -> None:
        self._bar.update(self._task, completed=done)

    def stop(self) -> None:
        self._bar.stop()


def show(renderable: Any) -> None:
    """Print a table (or any rich renderable built here) on stdout."""
    console().print(renderable)
    sys.stdout.flush()


def live(renderable: Any):  # type: ignore[no-untyped-def]
    """A live view on stdout that is redrawn in place: `with live(table) as view: view.update(new, refresh=True)`."""
    from rich.live import Live

    return Live(renderable, console=console(), auto_refresh=False, redirect_stdout=False, redirect_stderr=False)


def human_bytes(count: float) -> str:
    """2400000000 -> "2.4 GB" (decimal units, as Ollama and rich's download column count)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


class TransferView:
    """Live rows of downloads (label, status, bar, bytes done/total, speed, ETA), redrawn in place
    on the `target` rich Console (default: stdout): `start()`, `update(key, ...)` as often as wanted, `stop()`."""

    def __init__(self, rows: Sequence[tuple[Any, str]], target: Any = None):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}", markup=False),
            TextColumn("{task.fields[status]}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=target or console(),
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._tasks = {key: self._bar.add_task(clean(label), total=None, status="waiting") for key, label in rows}
        self._drawn = 0.0

    def start(self) -> None:
        self._bar.start()

    def update(self, key: Any, completed: int, total: int | None, status: str, final: bool = False) -> None:
        """Move row `key`; it is redrawn at most ten times a second, and at once when `final`."""
        import time

        self._bar.update(self._tasks[key], completed=completed, total=total or None, status=clean(status))
        now = time.monotonic()
        if final or now - self._drawn >= 0.1:
            self._drawn = now
            self._bar.refresh()

    def stop(self) -> None:
        self._bar.refresh()
        self._bar.stop()
