"""Editing part of the registry file: a run of `[[instances]]` tables, parsed by tomlkit alone.

tomlkit keeps comments and layout but is slow: parsing a 45-instance file costs most of an edit's
time under the registry lock, and every queued edit waits for it. An edit touches one or a few
instance tables, so only their text (found by header lines) is parsed and written back between
the untouched text before and after it. A region is used only when it is exactly those tables:
parsed alone it gives the same instances as the whole file, and written back unchanged it gives
the file back byte for byte. Anything less plain (inline tables, sub-tables, a header inside a
multi-line string) makes `find` return None and the caller parse the whole file.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

_INSTANCES = re.compile(r"[ \t]*\[\[[ \t]*instances[ \t]*\]\][ \t]*(#[^\n]*)?\r?\n?")
_HEADER = re.compile(r"[ \t]*\[")

Span = tuple[int, int, bool]  # (first instance index, end index, must the region run to the end of the file)


class Region(NamedTuple):
    before: str
    document: Any  # a tomlkit document holding just these tables, edited in place
    after: str
    first: int
    count: int  # type: ignore[assignment]  # a field, as NamedTuple allows, hiding tuple.count

    def text(self) -> str:
        import tomlkit

        return self.before + tomlkit.dumps(self.document) + self.after

    def expected(self, data: dict[str, Any]) -> dict[str, Any]:
        """The whole file's data after the edit: `data` (as read) with this region's tables replaced."""
        instances = list(data["instances"])
        instances[self.first:self.first + self.count] = self.document.unwrap().get("instances", [])
        return {**data, "instances": instances}


def find(text: str, data: dict[str, Any], span: Span) -> Region | None:
    """The region of instance tables span[0]..span[1]-1 of `text` (parsed as `data`), or None."""
    import tomlkit

    first, end, to_end = span
    instances = data.get("instances")
    if not isinstance(instances, list) or not 0 <= first < end <= len(instances):
        return None
    headers: list[tuple[int, bool]] = []  # (offset, is an [[instances]] header)
    offset = 0
    for line in text.splitlines(keepends=True):
        if _HEADER.match(line):
            headers.append((offset, bool(_INSTANCES.fullmatch(line))))
        offset += len(line)
    starts = [at for at, instance in headers if instance]
    if len(starts) != len(instances):
        return None
    start = starts[first]
    stop = next((at for at, _ in headers if at > starts[end - 1]), len(text))
    if to_end and stop != len(text):
        return None
    chunk = text[start:stop]
    try:
        document = tomlkit.parse(chunk)
    except ValueError:
        return None
    if tomlkit.dumps(document) != chunk or document.unwrap() != {"instances": instances[first:end]}:
        return None
    return Region(text[:start], document, text[stop:], first, end - first)
