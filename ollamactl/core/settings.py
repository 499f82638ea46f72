"""The `[settings]` of a registry: every setting's default and the one check of its value.

Flags that override a setting (`--timeout`, `--connect-timeout`, ...) are checked by the same
function, so a value is accepted or refused in the same words wherever it comes from.
"""

from __future__ import annotations

from typing import Any

from ollamactl.core.selection import STRATEGIES

DEFAULTS: dict[str, Any] = {
    "health_ttl": 300.0,  # seconds a healthy probe result is trusted
    "timeout": 5.0,  # seconds one health probe may take
    "strategy": "round-robin",
    "concurrency": 256,  # health probes at once
    "connect_timeout": 3.0,  # seconds to connect (run, embed)
    "first_byte_timeout": 600.0,  # seconds until a model answers at all (a cold load takes minutes)
}


def problem(key: str, value: Any) -> str | None:
    """Why `value` cannot be setting `key`, in words, or None. Unknown keys are the user's own."""
    if key == "strategy":
        return None if value in STRATEGIES else f"must be one of {', '.join(STRATEGIES)}, got {value!r}"
    if key not in DEFAULTS:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "concurrency":  # a count of probes at once: inf or 2.5 cannot be one
        whole = number and (isinstance(value, int) or value.is_integer())
        return None if whole and value >= 1 else f"must be a whole number >= 1, got {value!r}"
    return None if number and value > 0 else f"must be a positive number, got {value!r}"
