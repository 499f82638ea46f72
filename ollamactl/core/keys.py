"""API keys never come back out: the keys a fleet would send, and the one scrubber for server words.

Server words (errors, versions, model names) are scrubbed with the keys known when they are
stored, and again with the keys configured now when they are shown (`health_cache`'s readers,
routing's reasons, export): a key added or changed since, or one this process knows and the
process that stored the words did not (a background refresh started before the key was set),
must not come back out of the cache either.

Stdlib-free and cheap to import: a `pick` that explains an unhealthy instance runs through here.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable

    from ollamactl.core.registry import Instance


def keys_of(instances: Iterable[Instance]) -> tuple[str, ...]:
    """Every API key `instances` would send (as configured and trimmed), longest first."""
    keys: set[str] = set()
    for instance in instances:
        key = instance.resolve_api_key()
        if key:
            keys.update(form for form in (key, key.strip()) if form)
    return tuple(sorted(keys, key=len, reverse=True))


def redact(text: str, keys: Iterable[str]) -> str:
    """`text` with every key in `keys` (and so `Bearer <key>`) replaced by `***`.

    The one scrubber for server text: health results, errors and export warnings pass through it
    before they are stored or shown.
    """
    for key in keys:
        if key in text:
            text = text.replace(key, "***")
    return text
