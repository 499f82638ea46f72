"""Times in words for people and in RFC 3339 for scripts: one spelling everywhere. Cheap to import."""

from __future__ import annotations

from typing import Any


def iso_utc(epoch: Any) -> str | None:
    """Epoch seconds as `2026-11-27T10:00:00.000Z`; None for anything that is not a usable time."""
    import datetime as dt

    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
        return None
    try:
        stamp = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clock(epoch: float) -> str:
    """Epoch seconds as the local wall clock, `14:03:27`."""
    import time

    return time.strftime("%H:%M:%S", time.localtime(epoch))
