"""`ollamactl top`: a live dashboard of the fleet: status, leases, requests, errors, first-token
time, generation speed, loaded models and a sparkline of the last minutes, redrawn in place.

Drawing never waits on a server: the counters come from the store, and the health checks and
`/api/ps` answers from a background thread whose last results are shown (a hung instance shows as
such and holds nothing up). The registry is read again for every frame.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import typer

from ollamactl import checked_number
from ollamactl.cli import output
from ollamactl.cli.context import fleet

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

SPARK = "▁▂▃▄▅▆▇█"
TREND_MINUTES = 15

# (column, width it needs), in the order they are given up when the terminal is too narrow: the
# name is never dropped.
COLUMNS = (("NAME", 0), ("STATUS", 8), ("FLIGHT", 7), ("RPM", 5), ("ERR%", 6), ("P50", 7), ("TOK/S", 7),
           ("LOADED", 14), ("TREND", TREND_MINUTES + 2))
DROP_ORDER = ("TREND", "LOADED", "P50", "TOK/S", "ERR%", "RPM", "FLIGHT", "STATUS")


@dataclass
class Snapshot:
    """What the background thread learned last: /api/ps per instance id (None: could not ask)."""

    loaded: dict[str, list[dict[str, Any]] | None]
    at: float = 0.0


class Poller:
    """Checks health and asks /api/ps every `interval` s on a daemon thread; `latest` is what it knows."""

    def __init__(self, interval: float):
        self.interval = interval
        self.latest = Snapshot({})
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ollamactl-top", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def once(self) -> None:
        current = fleet()
        current.health()  # probes what is stale; results go to the shared cache the frame reads
        outcomes = current.running()
        self.latest = Snapshot({o.instance.id: o.data if o.ok else None for o in outcomes}, time.time())

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.once()
            except Exception:  # noqa: BLE001 - a poll that failed is shown as stale, never a crash
                pass
            self.stopping.wait(self.interval)


def columns_for(width: int, name_width: int) -> list[str]:
    """The columns that fit `width`, dropping the least telling first; the name always stays."""
    shown = [name for name, _ in COLUMNS]
    needed = dict(COLUMNS)
    needed["NAME"] = max(8, min(name_width, 24))

    def total() -> int:
        return sum(needed[name] + 2 for name in shown)

    for name in DROP_ORDER:
        if total() <= width:
            break
        shown.remove(name)
    return shown


def sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return SPARK[0] * len(counts)
    return "".join(SPARK[min(len(SPARK) - 1, round(count / top * (len(SPARK) - 1)))] for count in counts)


def row_cells(row: Any, loaded: list[dict[str, Any]] | None) -> dict[str, str]:
    from ollamactl.cli.models.ps_show import vram_share, vram_words

    recent_ok, recent_error = row.per_minute_ok[-1:] or (0,), row.per_minute_error[-1:] or (0,)
    window = sum(row.per_minute_ok[-5:]) + sum(row.per_minute_error[-5:])
    errors_window = sum(row.per_minute_error[-5:])
    p50 = row.first_token_quantile(0.5)
    speeds = [speed.tokens_per_second for speed in row.models if speed.tokens_per_second]
    models = "?" if loaded is None else ", ".join(
        f"{m['name']} {vram_words(vram_share(m))}".strip() for m in loaded) or "-"
    trend = [ok + error for ok, error in zip(row.per_minute_ok, row.per_minute_error, strict=True)][-TREND_MINUTES:]
    return {
        "NAME": row.name,
        "STATUS": "off" if not row.enabled else "?" if row.up is None else "up" if row.up else "DOWN",
        "FLIGHT": f"{row.inflight}/{row.max_inflight or '-'}",
        "RPM": str(recent_ok[0] + recent_error[0]),
        "ERR%": f"{100 * errors_window / window:.0f}%" if window else "-",
        "P50": "-" if p50 is None else f"{p50:.2f}s",
        "TOK/S": f"{max(speeds):.0f}" if speeds else "-",
        "LOADED": models,
        "TREND": sparkline(trend) if trend else "",
    }


def frame_rows(rows: list[Any], snapshot: Snapshot, shown: list[str]) -> list[list[str]]:
    return [[cells[name] for name in shown] for cells in (row_cells(row, snapshot.loaded.get(row.id)) for row in rows)]


def headline(rows: list[Any], snapshot: Snapshot) -> str:
    up = sum(1 for row in rows if row.up)
    flight = sum(row.inflight for row in rows)
    capacity = [row.max_inflight for row in rows if row.enabled]
    limit = str(sum(capacity)) if capacity and all(capacity) else "-"
    per_minute = sum((row.per_minute_ok[-1:] or (0,))[0] + (row.per_minute_error[-1:] or (0,))[0] for row in rows)
    total, errors = sum(row.total for row in rows), sum(row.errors for row in rows)
    polled = time.strftime("%H:%M:%S", time.localtime(snapshot.at)) if snapshot.at else "not yet"
    return (f"fleet: {len(rows)} instances, {up} up · {flight}/{limit} in flight · {per_minute} req/min"
            f" · {total} requests, {errors} errors · checked {polled}")


def render(rows: list[Any], snapshot: Snapshot, width: int) -> output.Grid:
    """One frame: the fleet's totals over a table that fits `width`."""
    shown = columns_for(width, max((len(row.name) for row in rows), default=8))
    return output.Grid(shown, frame_rows(rows, snapshot, shown), title=headline(rows, snapshot))


@app.command()
def top(
    interval: float = typer.Option(2.0, "--interval", metavar="S", help="Seconds between frames."),
    once: bool = typer.Option(False, "--once", help="Print one frame and exit (plain text when piped)."),
) -> None:
    """A live dashboard of every instance: status, leases, requests, errors, speed, loaded models.

    Columns: FLIGHT leases held / max_inflight, RPM requests this minute, ERR% errors of the last
    five minutes, P50 median time to first token, TOK/S the fastest model's generation speed,
    LOADED the models in memory (share in VRAM), TREND requests per minute, the last 15 minutes.
    Narrow terminals drop columns, never the name. Off a terminal (a pipe, a file) it prints a
    plain frame every interval, each followed by a blank line. Ctrl-C stops it.

    Example: ollamactl top --once | grep DOWN
    """
    checked_number("interval", interval)
    poller = Poller(interval)
    if once:
        poller.once()
        output.show(render(fleet().metrics(), poller.latest, output.width()))  # plain text when piped
        return
    poller.start()
    if not sys.stdout.isatty():  # like `top -b`: a plain frame every interval, then a blank line
        while True:
            output.show(render(fleet().metrics(), poller.latest, output.width()))
            sys.stdout.write("\n")
            sys.stdout.flush()
            time.sleep(interval)
    with output.Live(render(fleet().metrics(), poller.latest, output.width())) as view:
        while True:
            view.update(render(fleet().metrics(), poller.latest, output.width()))
            time.sleep(interval)
