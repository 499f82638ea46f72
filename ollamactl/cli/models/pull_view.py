"""How running pulls are shown: live rows on a terminal (output.TransferView), plain lines or
NDJSON events off one.

Each view takes the `PullProgress` rows of `Fleet.pull` as they change (`update`)
between `start()` and `stop()`. Server text (status words, errors) goes through `output.clean`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from ollamactl.cli import output

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl import PullProgress

JSON_PROGRESS_EVERY_S = 1.0  # NDJSON: byte counts at most this often per row (status changes always)


def label(progress: PullProgress) -> str:
    return f"{progress.instance.name} {progress.model}"


def words(progress: PullProgress) -> str:
    """The row's state in words: the server's status, or the failure."""
    if progress.state == "failed":
        return "failed: " + output.clean(progress.error or "unknown error")
    return output.clean(progress.status, 80)


class LiveView:
    """One row per pull on a terminal: label, status, bar, bytes done/total, speed and ETA."""

    def __init__(self, rows: list[PullProgress], console: Any = None):
        self._view = output.TransferView([(row.key, label(row)) for row in rows], console)

    def start(self) -> None:
        self._view.start()

    def update(self, progress: PullProgress) -> None:
        finished = progress.state in ("done", "failed")
        completed = progress.total if progress.state == "done" and progress.total else progress.completed
        self._view.update(progress.key, completed, progress.total, words(progress), final=finished)

    def stop(self) -> None:
        self._view.stop()


class LineView:
    """Off a terminal: a line whenever a row's status changes (`--json`: NDJSON objects, with byte
    counts at most once a second per row)."""

    def __init__(self, json_output: bool, stream: IO[str] | None = None):
        self._json = json_output
        self._stream = stream or sys.stdout
        self._shown: dict[tuple[str, str], tuple[str, str, float]] = {}

    def start(self) -> None:
        pass

    def update(self, progress: PullProgress) -> None:
        now = time.monotonic()
        status = words(progress)
        if (not self._json and progress.state == "waiting") or status == "connecting":
            return  # plain lines start with the server's first word
        before = self._shown.get(progress.key)
        seen = (progress.state, status) if self._json else ("", status)
        if before is not None and before[:2] == seen and not (self._json and now - before[2] >= JSON_PROGRESS_EVERY_S):
            return
        self._shown[progress.key] = (*seen, now)
        if self._json:
            line = json.dumps({"event": "progress", "id": progress.instance.id, "model": progress.model,
                               "state": progress.state, "status": progress.status, "completed": progress.completed,
                               "total": progress.total, "error": progress.error}, ensure_ascii=False, allow_nan=False)
        else:
            size = f" ({output.human_bytes(progress.layer_total)})" if progress.layer_total else ""
            line = f"{output.clean(label(progress))}: {status}{size}"
        self._stream.write(line + "\n")
        self._stream.flush()

    def stop(self) -> None:
        pass
