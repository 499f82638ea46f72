"""API keys: the one each instance is sent, and the one scrubber that keeps them out of server words.

Only what a server said in words (errors, version strings, anything echoed) is scrubbed, and only
where a key stands whole: `invalid key sk-abc123` and `Bearer ollama` lose the key, `llama3.2` and
`ollama_chat` keep every letter with the key `llama` or `ollama`. A word is a run of letters, digits
and `_` (regex `\\w`): a key whose first (last) character is one of them is matched only where the
character before (after) it is not, so a key is never cut out of a longer word. Identifiers a
server sent (model names, digests) are never rewritten: one that holds a key as a whole word is
left out instead (`holds`); what ollamactl generates (exports, its own tables) is never scrubbed.

Server words are scrubbed with the keys known when they are stored, and again with the keys
configured now when they are shown (`health.cache`'s readers, routing's reasons, export): a key
added or changed since, or one this process knows and the process that stored the words did not
(a background refresh started before the key was set), must not come back out of the cache either.

Cheap to import (`re` loads only when there is a key to look for): a `pick` that explains an
unhealthy instance runs through here.
"""

from __future__ import annotations

from functools import lru_cache

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import re
    from collections.abc import Iterable

    from ollamactl.core.registry.instances import Instance

PLACEHOLDER = "***"
CLIENT_KEY_VAR = "OLLAMA_API_KEY"  # what Ollama's official clients send as `Bearer` on every request


def sent_key(instance: Instance) -> str | None:
    """The key ollamactl sends to `instance` (without a key file's surrounding whitespace), or None."""
    return (instance.resolve_api_key() or "").strip() or None


def keys_of(instances: Iterable[Instance]) -> tuple[str, ...]:
    """Every API key `instances` would send (as configured and trimmed), longest first."""
    keys: set[str] = set()
    for instance in instances:
        key = instance.resolve_api_key()
        if key:
            keys.update(form for form in (key, key.strip()) if form)
    return tuple(sorted(keys, key=len, reverse=True))


@lru_cache(maxsize=8)
def _whole(keys: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern matching any of `keys` where it stands whole (see the module's docstring)."""
    import re

    def alone(key: str) -> str:
        before = r"(?<!\w)" if re.match(r"\w", key[0]) else ""
        after = r"(?!\w)" if re.match(r"\w", key[-1]) else ""
        return before + re.escape(key) + after

    return re.compile("|".join(alone(key) for key in sorted(keys, key=len, reverse=True)))


def redact(text: str, keys: Iterable[str]) -> str:
    """`text` (words a server sent) with every key in `keys` that stands whole replaced by `***`."""
    keys = tuple(key for key in keys if key and key in text)
    return _whole(keys).sub(PLACEHOLDER, text) if keys else text


def holds(identifier: str, keys: Iterable[str]) -> bool:
    """Whether `identifier` (a name a server sent) holds one of `keys` as a whole word: it is left out,
    never rewritten."""
    keys = tuple(key for key in keys if key and key in identifier)
    return bool(keys) and _whole(keys).search(identifier) is not None
