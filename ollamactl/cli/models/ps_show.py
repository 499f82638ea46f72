"""The body of `ps`: Typer-free, so a script's `ollamactl ps` starts like a tool (the launcher's
fast route calls it; so does the Typer command in cli/models/model_cmds.py). Returns the exit code:
1 when some instance could not be asked.
"""

from __future__ import annotations

import re
import time

from ollamactl import ExitCode
from ollamactl.cli import output
from ollamactl.cli.context import fleet

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


def ps(refs: list[str] | None, json_output: bool) -> int:
    """The loaded models of every enabled (or named) instance, from /api/ps: a table or JSON."""
    outcomes = fleet().running(*(refs or ()))
    now = time.time()
    if json_output:
        output.print_json([{
            "id": o.instance.id, "name": o.instance.name, "url": o.instance.url, "error": o.error,
            "models": None if o.data is None else [{
                "name": m["name"], "size": _number(m.get("size")), "size_vram": _number(m.get("size_vram")),
                "vram_share": vram_share(m), "context_length": _number(m.get("context_length")),
                "expires_at": m.get("expires_at") if isinstance(m.get("expires_at"), str) else None,
            } for m in o.data]} for o in outcomes])
    else:
        rows: list[tuple[Any, ...]] = []
        for o in outcomes:
            who = o.instance.name
            if o.error:
                rows.append((who, output.styled("unreachable: " + o.error, "red"), "", "", "", ""))
            elif o.data is None:
                rows.append((who, output.styled("? (no /api/ps: Ollama older than 0.1.38)", "dim"), "", "", "", ""))
            elif not o.data:
                rows.append((who, output.styled("-", "dim"), "", "", "", ""))
            for m in o.data or ():
                size, context = _number(m.get("size")), _number(m.get("context_length"))
                rows.append((who, m["name"], "" if size is None else output.human_bytes(size),
                             vram_words(vram_share(m)), "" if context is None else str(context),
                             until(m.get("expires_at"), now)))
        output.table(("INSTANCE", "MODEL", "SIZE", "VRAM", "CONTEXT", "UNLOADS IN"), rows,
                     drop=("CONTEXT", "VRAM", "SIZE"), cut={"MODEL": 16, "INSTANCE": 16})
    return ExitCode.FAILED if any(o.error for o in outcomes) else ExitCode.OK


def until(expires_at: Any, now: float) -> str:
    """`expires_at` (RFC 3339) as the time left: `4m 59s`, `2h 3m`, `forever`, `expired`, or `?`."""
    import datetime as dt

    if not isinstance(expires_at, str) or len(expires_at) > 64:
        return "?"
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", expires_at.replace("Z", "+00:00"))  # Go sends nanoseconds
    try:
        moment = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return "?"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    left = moment.timestamp() - now
    if left > 10 * 365 * 86400:
        return "forever"
    if left <= 0:
        return "expired"
    hours, rest = divmod(int(left), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def vram_share(model: dict) -> float | None:
    """The share of a loaded model (an /api/ps entry) held in VRAM, or None when it does not say."""
    size, vram = _number(model.get("size")), _number(model.get("size_vram"))
    if size is None or vram is None or size <= 0:
        return None
    return max(0.0, min(1.0, vram / size))


def vram_words(share: float | None) -> str:
    """`vram_share` in words: "100% GPU", "40% GPU / 60% CPU", "100% CPU"."""
    if share is None:
        return ""
    if share >= 1 or share <= 0:
        return "100% GPU" if share >= 1 else "100% CPU"
    return f"{share:.0%} GPU / {1 - share:.0%} CPU"
