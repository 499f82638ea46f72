"""Reading what a request is made of from the command line and stdin: typed `-o` options, `--format`,
the prompt, and the texts to embed (checked before anything is sent)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ollamactl import JsonRefused, UsageError, load_json

MAX_TEXT = 64 * 1024 * 1024  # bytes of one line to embed (held in memory while it is read)
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def parse_option(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` with a typed value: int, float, true/false, JSON, else the string itself."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"option {text!r} is not KEY=VALUE", "e.g. -o temperature=0.2 -o num_ctx=8192")
    shown = value.strip() if len(value.strip()) <= 40 else value.strip()[:39] + "…"
    try:
        typed = typed_value(value)
    except JsonRefused as exc:
        raise UsageError(f"-o {key}={shown}: the value holds {exc}",
                         "give a flatter value, with finite numbers") from None
    if isinstance(typed, float) and typed - typed != 0.0:  # 1e400, read as infinity
        raise UsageError(f"-o {key}={shown}: not a finite number", "give a number such as 0.2 or 8192")
    return key, typed


def typed_value(value: str) -> Any:
    stripped = value.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    if stripped in ("true", "false"):
        return stripped == "true"
    if stripped[:1] in ('[', '{', '"') or stripped == "null":
        try:
            return load_json(stripped.encode())
        except JsonRefused:
            raise  # JSON, but too deep or not finite: not to be sent as a string either
        except ValueError:
            pass
    return value


def parse_format(value: str | None) -> Any:
    """`json`, or a path to a JSON-schema file (its object is sent)."""
    if value is None or value == "json":
        return value
    if not value.strip():
        raise UsageError("--format is empty", "use json or the path of a JSON-schema file")
    path = Path(value)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--format: no such file {value!r}", "use json or the path of a JSON-schema file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--format: cannot read {value!r}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        schema = load_json(raw.encode())
    except JsonRefused as exc:
        raise UsageError(f"--format: {value} holds {exc}", "give a JSON-schema object") from None
    except ValueError as exc:
        raise UsageError(f"--format: {value} is not valid JSON ({exc})", "give a JSON-schema object") from None
    if not isinstance(schema, dict):
        raise UsageError(f"--format: {value} holds a JSON {type(schema).__name__}, not an object",
                         "give a JSON-schema object such as {\"type\": \"object\", ...}")
    return schema


def read_prompt(words: list[str] | None) -> str:
    if words and words != ["-"]:
        prompt = " ".join(words)
    else:
        prompt = sys.stdin.read()
        if prompt.endswith("\n"):
            prompt = prompt[:-1]
    if not prompt.strip():
        raise UsageError("the prompt is empty", "give it as arguments or on stdin")
    if not _is_utf8(prompt):
        raise UsageError("the prompt is not UTF-8 text")
    return prompt


def _is_utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8 (argv and stdin keep them as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw_lines(stream: IO[bytes], source: str) -> Iterator[bytes]:
    """Lines split on b"\\n" only (kept on each line), read straight from the file descriptor; a
    line longer than MAX_TEXT is refused before it is held in memory.

    Reading the descriptor (not Python's buffered object) matters: the input is read on a daemon
    thread, and one blocked inside a BufferedReader at exit (Ctrl-C while stdin is still open)
    makes the interpreter abort instead of exiting cleanly.
    """
    import os

    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # an in-memory stream (tests)
        yield from stream
        return
    rest: list[bytes] = []  # the reads since the last newline, joined once (a huge line stays linear)
    held = 0
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            break
        if b"\n" not in data:
            rest.append(data)
            held += len(data)
            if held > MAX_TEXT:
                raise UsageError(f"a line of {source} is longer than {MAX_TEXT >> 20} MB",
                                 "every line is one text to embed; split it")
            continue
        if rest:
            rest.append(data)
            data = b"".join(rest)
        *lines, tail = data.split(b"\n")
        for line in lines:
            yield line + b"\n"
        rest = [tail] if tail else []
        held = len(tail)
    if rest:
        yield b"".join(rest)


def _line_texts(stream: IO[bytes], source: str) -> Iterator[str]:
    """One text per line (only the trailing newline removed; a UTF-8 byte order mark at the start is
    not text); an empty line or bad UTF-8 is an error."""
    for number, raw in enumerate(_raw_lines(stream, source), 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        if not raw:
            raise UsageError(f"line {number} of {source} is empty",
                             "every line is one text to embed; remove empty lines")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"line {number} of {source} is not UTF-8 text") from None


def _prescan(stream: IO[bytes], source: str) -> int | None:
    """Check a seekable input (a file, or stdin redirected from one) fully before any request, so
    bad input writes nothing; returns its line count. Pipes and terminals are read lazily instead."""
    import os

    try:
        fd = stream.fileno()
        position = os.lseek(fd, 0, os.SEEK_CUR)
    except (OSError, ValueError, AttributeError):
        try:
            if not stream.seekable():
                return None
            position = stream.tell()
        except (OSError, ValueError):
            return None
        count = sum(1 for _ in _line_texts(stream, source))
        stream.seek(position)
        return count
    count = sum(1 for _ in _line_texts(stream, source))
    os.lseek(fd, position, os.SEEK_SET)
    return count


def open_inputs(texts: list[str] | None, file: str | None) -> tuple[Iterator[str], int | None, IO[bytes] | None]:
    """(texts, how many if known, a file to close)."""
    if texts and file is not None:
        raise UsageError("give texts as arguments or with --file, not both")
    if texts:
        for number, text in enumerate(texts, 1):
            if not text:
                raise UsageError(f"text argument {number} is empty", "every argument is one text to embed")
            if not _is_utf8(text):
                raise UsageError(f"text argument {number} is not UTF-8 text")
        return iter(texts), len(texts), None
    if file is None or file == "-":
        stream, source, handle = sys.stdin.buffer, "stdin", None
    else:
        try:
            stream = handle = open(file, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise UsageError(f"--file: cannot open {file!r}: {exc.strerror}") from None
        source = file
    total = _prescan(stream, source)
    return _line_texts(stream, source), total, handle

