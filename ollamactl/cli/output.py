"""Everything ollamactl shows a person: the only module that imports rich, the one sanitiser for
untrusted text, and the one channel for messages, warnings and errors on stderr.

Data goes to stdout (tables for people, JSON for scripts); every message goes to stderr through
`say`, `warn` or `error`. Text that came from a server, the registry file or the user is passed
through `clean` before it reaches a terminal: control characters and escape sequences are made
visible, and rich tables receive `Text` objects, so markup in a name is shown, never interpreted.
Tables (`Grid`) are fitted to the width: no cell ever wraps; rich draws them on a terminal only.
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
WIDE = 250  # columns of rich's output off a terminal (progress on stderr), rather than its 80
GAP = 2  # spaces between table columns
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
    from ollamactl.cli.flags import in_flags

    _write(f"{PREFIX}: warning: {clean(in_flags(text), MAX_MESSAGE)}", vital=True)


def error(text: str) -> None:
    _write(f"{PREFIX}: error: {clean(text, MAX_MESSAGE)}")


def answer_text(text: str, terminal: bool) -> str:
    """A model's answer text for a stream: exact for a pipe or file; on a terminal, escape sequences
    and control characters other than newlines and tabs are made visible (a server must not be
    able to retitle, clear or spoof the user's terminal)."""
    return clean(text, None, keep="\n\t") if terminal else text


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()


def console(stderr: bool = False):  # type: ignore[no-untyped-def]
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal rich would wrap at 80 columns; keep rows whole for grep and less.
    size = None if stream.isatty() else WIDE
    return Console(file=stream, width=size, soft_wrap=False, highlight=False, markup=False, emoji=False)


def width() -> int:
    """The columns a table on stdout is fitted to: on a terminal its width ($COLUMNS when set, as
    rich reads it); elsewhere no limit, so a script's rows stay whole."""
    import os

    if not sys.stdout.isatty():
        return sys.maxsize
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 80  # as rich assumes


class Styled(str):
    """A cell shown in `style` (a rich style name) on a terminal, and as plain text elsewhere."""

    style = ""


def styled(value: Any, style: str) -> Styled:
    """An untrusted value as a styled cell, cleaned as every cell is."""
    cell = Styled(_cell(value))
    cell.style = style
    return cell


class Grid:
    """A table to show: `columns`, `rows` of untrusted cells (cleaned here; `styled` ones keep their
    style), an optional title, and how it gives way on a narrow terminal so that no cell wraps: the
    columns in `drop` go first, in that order, then those in `cut` are cut with an ellipsis, in that
    order, down to the characters given."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
                 drop: Sequence[str] = (), cut: dict[str, int] | None = None):
        self.columns = tuple(clean(column) for column in columns)
        self.rows = [[cell if isinstance(cell, Styled) else _cell(cell) for cell in row] for row in rows]
        self.title = title
        self.drop = tuple(drop)
        self.cut = dict(cut or {})

    def fit(self, width: int) -> dict[int, int]:
        """{column index: characters it may use} for the columns shown, so each row fits `width`."""
        natural = [max([_cells(column)] + [_cells(row[n]) for row in self.rows])
                   for n, column in enumerate(self.columns)]
        index = {column: n for n, column in enumerate(self.columns)}
        cut = {index[column]: least for column, least in self.cut.items() if column in index}
        floor = [min(size, cut.get(n, size)) for n, size in enumerate(natural)]
        shown = list(range(len(natural)))

        def total(sizes: Sequence[int] | dict[int, int]) -> int:
            return sum(sizes[n] for n in shown) + GAP * (len(shown) - 1)

        for column in self.drop:
            if total(floor) <= width:
                break
            if index.get(column) in shown:
                shown.remove(index[column])
        limits = {n: natural[n] for n in shown}
        for n in cut:
            excess = total(limits) - width
            if n in limits and excess > 0:
                limits[n] = max(floor[n], natural[n] - excess)
        return limits


def lines(grid: Grid, columns: int) -> list[str]:
    """`grid` as plain text fitted to `columns`: its title (cut to the width), the header, a line per
    row; columns two spaces apart, padded by display width (a wide character takes two cells), no
    trailing spaces."""
    limits = grid.fit(columns)
    body = [[clean(grid.columns[n], size) for n, size in limits.items()]]
    body += [[clean(row[n], size) for n, size in limits.items()] for row in grid.rows]
    sizes = [[_cells(text) for text in line] for line in body]
    widths = [max(column) for column in zip(*sizes, strict=True)] if body[0] else []
    shown = ["  ".join(text + " " * (widths[n] - size[n]) for n, text in enumerate(line)).rstrip()
             for line, size in zip(body, sizes, strict=True)]
    return ([clean(grid.title, columns)] if grid.title else []) + shown


def renderable(grid: Grid, columns: int | None = None):  # type: ignore[no-untyped-def]
    """`grid` as rich draws it on a terminal `columns` wide (default: `width()`): the layout of
    `lines`, with the header in bold and styled cells in their style."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    columns = width() if columns is None else columns
    limits = grid.fit(columns)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for n, size in limits.items():
        table.add_column(Text(clean(grid.columns[n], size)), no_wrap=True)
    for row in grid.rows:
        table.add_row(*(Text(clean(row[n], size), style=getattr(row[n], "style", "")) for n, size in limits.items()))
    return Group(Text(clean(grid.title, columns)), table) if grid.title else table


def show(grid: Grid) -> None:
    """Print `grid` on stdout fitted to `width()`: with rich's styles on a terminal, as plain text
    elsewhere (so a script's command loads no rich)."""
    if sys.stdout.isatty():
        console().print(renderable(grid))
    else:
        sys.stdout.write("".join(line + "\n" for line in lines(grid, width())))
    sys.stdout.flush()


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
          drop: Sequence[str] = (), cut: dict[str, int] | None = None) -> None:
    """Print a table on stdout (see `Grid` for `drop` and `cut`, `show` for how)."""
    show(Grid(columns, rows, title, drop, cut))


def plain_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table as plain text even on a terminal, every row whole (never fitted to a width)."""
    sys.stdout.write("".join(line + "\n" for line in lines(Grid(columns, rows), sys.maxsize)))
    sys.stdout.flush()


def _cells(text: str) -> int:
    """Terminal cells `text` takes: East Asian wide and full-width characters two, combining marks none."""
    if text.isascii():
        return len(text)
    from unicodedata import combining, east_asian_width

    return sum(0 if combining(ch) else 2 if east_asian_width(ch) in "WF" else 1 for ch in text)


def instances(items: Sequence[Any]) -> None:
    """The registry's table (`list`): each instance by its name (its id when it has none); on a
    narrow terminal the least needed columns go, then long URLs and names are cut."""
    columns = ("NAME", "URL", "TYPE", "ENABLED", "WEIGHT", "TIER", "MAX", "AUTH")
    rows = ((i.name, i.url, i.type, "yes" if i.enabled else "no", i.weight, i.tier_name, i.max_inflight or "-",
             i.auth) for i in items)
    table(columns, rows, drop=("AUTH", "MAX", "TIER", "WEIGHT", "TYPE"), cut={"URL": 20, "NAME": 16})


class ProgressBar:
    """A transient progress bar on stderr: `update(done)`, then `stop()`."""

    def __init__(self, label: str, total: int | None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(clean(label), total=total)

    def update(self, done: int, label: str | None = None) -> None:
        """Move the bar to `done`, with a new `label` if given."""
        if label is None:
            self._bar.update(self._task, completed=done)
        else:
            self._bar.update(self._task, completed=done, description=clean(label))

    def stop(self) -> None:
        self._bar.stop()


class Live:
    """A table on stdout redrawn in place (a terminal only): `with Live(grid) as view: view.update(new)`;
    each drawing is fitted to the terminal's width at that moment."""

    def __init__(self, grid: Grid):
        from rich.live import Live as RichLive

        self._live = RichLive(renderable(grid), console=console(), auto_refresh=False, redirect_stdout=False,
                              redirect_stderr=False)

    def __enter__(self) -> Live:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def update(self, grid: Grid) -> None:
        self._live.update(renderable(grid), refresh=True)


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
