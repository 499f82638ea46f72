"""Error types, exit codes and the one stderr warning channel shared by the core and the CLI."""

from __future__ import annotations

import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation failed: network, server error, unreadable registry
    USAGE = 2  # usage error or invalid input
    NO_INSTANCE = 3  # no eligible instance
    SOME_UNHEALTHY = 4  # `health`: some checked instances are unhealthy
    INTERRUPTED = 130


class OllamactlError(Exception):
    """An error the user can act on: `message` says what went wrong, `hint` what to do."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(OllamactlError):
    """Bad input on the command line or stdin; nothing was written."""

    exit_code = ExitCode.USAGE


class RegistryError(OllamactlError):
    """The registry file cannot be read or must not be written."""


class NoInstanceError(OllamactlError):
    """No instance can serve the request."""

    exit_code = ExitCode.NO_INSTANCE


def warn(message: str) -> None:
    """Print a warning on stderr; stdout stays reserved for data."""
    sys.stderr.write(f"ollamactl: warning: {message}\n")
    sys.stderr.flush()


def report(error: OllamactlError) -> int:
    """Print `error` as one line on stderr and return its exit code."""
    sys.stderr.write(f"ollamactl: error: {error}\n")
    sys.stderr.flush()
    return int(error.exit_code)
