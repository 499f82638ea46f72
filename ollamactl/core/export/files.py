"""Where `export -o` and `--secrets-file` write: checked before anything is built, written atomically.

The config replaces the previous export whole (temp file + rename, mode 0644), so re-running
an export is idempotent; the secrets file (nginx keys) is created 0600 and written first, so a
config never names keys that are not there yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ollamactl.core import params
from ollamactl.core.errors import OllamactlError, Said, UsageError
from ollamactl.core.export.build import FORMATS, Exported
from ollamactl.core.state.atomic_files import atomic_write

CONFIG_MODE = 0o644
SECRETS_MODE = 0o600


@dataclass(frozen=True)
class ExportFiles:
    output: Path | None  # None: stdout
    secrets: Path | None


def checked_paths(fmt: str, output: str | os.PathLike[str] | None, secrets: str | os.PathLike[str] | None
                  ) -> ExportFiles:
    """Absolute paths for -o and --secrets-file; UsageError (nothing written) when they cannot be used."""
    if secrets is not None and fmt in FORMATS and fmt != "nginx":
        raise UsageError(Said("{secrets_file} is for {fmt=nginx}, not {given}", given=fmt),
                         "LiteLLM and HAProxy read keys from the environment; leave it out")
    paths = [_checked(params.text(param, os.fspath(path) if isinstance(path, os.PathLike) else path), param)
             if path is not None else None for path, param in ((output, "output"), (secrets, "secrets_file"))]
    if paths[0] is not None and paths[0] == paths[1]:
        raise UsageError(Said("{output} and {secrets_file} are the same file ({path})", path=paths[0]),
                         "keep the keys in a file of their own")
    return ExportFiles(paths[0], paths[1])


def _checked(path: str, param: str) -> Path:
    subject = "{" + param + "}"
    if not path.strip():
        raise UsageError(Said(subject + " is empty"), "give a file path")
    absolute = Path(os.path.abspath(os.path.expanduser(path)))
    if absolute.is_dir():
        raise UsageError(Said(subject + " is a directory ({path})", path=absolute), "give a file path")
    if not absolute.parent.is_dir():
        raise UsageError(Said(subject + ": no such directory ({path})", path=absolute.parent), "create it first")
    return absolute


def write(files: ExportFiles, result: Exported) -> None:
    """Write the secrets (when there are any) and then the config (when -o was given)."""
    if files.secrets is not None and result.secrets is not None:
        _write(files.secrets, result.secrets, SECRETS_MODE)
    if files.output is not None:
        _write(files.output, result.text, CONFIG_MODE)


def _write(path: Path, text: str, mode: int) -> None:
    try:
        atomic_write(path, text.encode(), mode=mode)
    except OSError as exc:
        raise OllamactlError(f"could not write {path} ({exc.strerror or exc})",
                             "check that the directory is writable") from exc
