"""Reading the registry file as untrusted input: what it is, how big, how deep, and a leading BOM.

A registry symlinked to /dev/zero was read without limit, a FIFO hung every command, and a TOML
nested 500 levels ended in a RecursionError. `read` opens the file without waiting (O_NONBLOCK: a
FIFO opens at once), accepts regular files only (a symlink to one is followed: dotfile managers)
and at most MAX_BYTES; the parsed document may nest at most MAX_DEPTH levels (state.shallow). A UTF-8 BOM
(Windows editors write one) is accepted: `split_bom` takes it off for parsing, and an edit puts it
back in front of the new content, so the file keeps its encoding.
"""

from __future__ import annotations

import codecs
import os
import stat

from ollamactl.core.errors import RegistryError

MAX_BYTES = 8 * 1024 * 1024  # a thousand instances take about 200 KB
MAX_DEPTH = 16  # tables and arrays within each other; the schema needs 3
BOM = codecs.BOM_UTF8


def read(path: object, shown: object) -> bytes | None:
    """The bytes of the registry at `path` (named `shown` in errors), None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # type: ignore[arg-type]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError(f"cannot read registry {shown}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "directory" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else "device or socket"
            raise RegistryError(f"registry {shown} is a {kind}, not a regular file; it was not read",
                                "point OLLAMACTL_CONFIG (or the default path) at a TOML file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RegistryError(f"cannot read registry {shown}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise RegistryError(f"registry {shown} is larger than {MAX_BYTES // 1024 // 1024} MB; it was not read",
                            "is it the right file? A registry of a thousand instances takes about 200 KB")
    return raw


def split_bom(raw: bytes) -> tuple[bytes, bytes]:
    """(the BOM or b"", the rest)."""
    return (BOM, raw[len(BOM):]) if raw.startswith(BOM) else (b"", raw)
