"""Times in words for people and in RFC 3339 for scripts: one spelling everywhere. Cheap to import."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
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


def age(seconds: float) -> str:
    """A duration in words, rounded for people: `0 s`, `42 s`, `3 min`, `5 h`, `2 days`."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
