"""Parsing the JSON a server sent (or a user gave): at most MAX_DEPTH levels deep, finite numbers only.

json.loads recurses once per level, so 2 KB of `[` ends in a RecursionError, and a document that
parses 900 levels deep breaks whatever walks it next (the sanitiser, `--json` output). Ollama's
answers nest a few levels (tool-call arguments a few more): `loads` refuses anything deeper than
MAX_DEPTH before parsing it. The check costs two `bytes.count` calls for an answer with few
brackets (a streamed token line); only an answer with more than MAX_DEPTH brackets is measured, in C
(escapes and strings removed, then innermost pairs dropped one level per pass).

NaN, Infinity and numbers beyond a float's range (1e400) are not JSON (RFC 8259) and strict
parsers reject them: an answer holding one is refused like any other answer that is not JSON (an
error, never `null`), so none can reach `--json` or `embed` output. Every refusal is a ValueError
(Refused when it is JSON to Python but not to believe, with words saying why: see `not_ollama`); callers
turn it into their error naming the instance.
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 64


class Refused(ValueError):
    """Text that parses as JSON in Python but is not to be believed (too deep, not finite); its
    words name what it holds ("NaN, which is not a JSON number")."""


def not_ollama(error: ValueError, otherwise: str | None = "the answer is not JSON") -> str:
    """What to say about an answer `loads` refused: "not an Ollama server" and why (`otherwise`
    for JSON that does not parse)."""
    why = f"the answer holds {error}" if isinstance(error, Refused) else otherwise
    return f"not an Ollama server ({why})" if why else "not an Ollama server"

_MAY_OVERFLOW = re.compile(rb"[eE]\+?0*[1-9]\d{2}|\d{300}")  # an exponent of 100+ or 300 digits
_KEEP = b'"[]{}'
_DROP = bytes(set(range(256)) - set(_KEEP))
_PAIR = re.compile(rb"\[\]|\{\}")


def loads(content: bytes) -> object:
    """The JSON value in `content`; a ValueError saying why when it is not JSON, is nested deeper
    than MAX_DEPTH or holds a number that is not finite."""
    if content.count(b"[") + content.count(b"{") > MAX_DEPTH and too_deep(content):
        raise Refused(f"JSON nested more than {MAX_DEPTH} levels deep")
    if _MAY_OVERFLOW.search(content):
        return json.loads(content, parse_constant=_not_finite, parse_float=_finite)
    return json.loads(content, parse_constant=_not_finite)


def too_deep(content: bytes) -> bool:
    """Whether `content` nests more than MAX_DEPTH levels (brackets inside strings do not count)."""
    plain = content.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    brackets = b"".join(plain.split(b'"')[::2])  # the even parts are outside strings
    passes = 0
    while brackets:
        passes += 1
        left = _PAIR.sub(b"", brackets)
        if passes > MAX_DEPTH or len(left) == len(brackets):
            # still shrinking after MAX_DEPTH levels, or unbalanced (not JSON): deep unless what is
            # left is short enough for json.loads to find the fault within its own recursion
            return passes > MAX_DEPTH or passes + len(left) > MAX_DEPTH
        brackets = left
    return False


def _not_finite(constant: str) -> float:
    raise Refused(f"{constant}, which is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf (NaN cannot be spelt as a number)
        raise Refused(f"{text[:20]}, beyond the range of a number")
    return value
