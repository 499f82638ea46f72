"""Error types and exit codes: what went wrong, in words a user can act on, and the code to exit with."""

from __future__ import annotations


class ExitCode:
    """The exit codes, as plain ints (an IntEnum would cost `pick` the import of enum); what each
    means is in EXIT_MEANINGS. Help texts name them from here, never as digits."""

    OK = 0
    FAILED = 1
    USAGE = 2
    NO_INSTANCE = 3
    SOME_UNHEALTHY = 4
    INTERRUPTED = 130


EXIT_MEANINGS = {  # as `ollamactl --help` lists them; docs/output.md says more about each
    ExitCode.OK: "ok",
    ExitCode.FAILED: "operation failed",
    ExitCode.USAGE: "bad usage or input",
    ExitCode.NO_INSTANCE: "no eligible instance",
    ExitCode.SOME_UNHEALTHY: "some instances unhealthy (health)",
    ExitCode.INTERRUPTED: "interrupted",
}


class OllamactlError(Exception):
    """An error the user can act on: `message` says what went wrong, `hint` what to do, and
    `details` holds facts that belong on lines of their own (one per attempt, one per instance)."""

    exit_code = ExitCode.FAILED
    details: tuple[str, ...] = ()

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def headline(self) -> str:
        """The message and the hint, without the details."""
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def __str__(self) -> str:
        if not self.details:
            return self.headline()
        listing = f"{self.message}: {'; '.join(self.details)}"
        return f"{listing}; {self.hint}" if self.hint else listing


class UsageError(OllamactlError):
    """Bad input on the command line or stdin; nothing was written."""

    exit_code = ExitCode.USAGE


class InvalidValue(UsageError):
    """An argument breaks its rule: `params` names it (or the arguments that conflict) as the library
    calls it, `problem` says why. A front end shows its own names for them (the CLI: its flags) with
    `named`."""

    def __init__(self, params: tuple[str, ...], problem: str, hint: str | None = None):
        super().__init__(f"{' and '.join(params)} {problem}", hint)
        self.params = params
        self.problem = problem

    def named(self, names: dict[str, str]) -> InvalidValue:
        """The same error, each parameter under its name in `names` (when it has one there)."""
        return InvalidValue(tuple(names.get(param, param) for param in self.params), self.problem, self.hint)


class RegistryError(OllamactlError):
    """The registry file cannot be read or must not be written."""


class NoInstanceError(OllamactlError):
    """No instance can serve the request; `reasons` says why each one was dropped ({id: words})."""

    exit_code = ExitCode.NO_INSTANCE

    def __init__(self, message: str, hint: str | None = None, reasons: dict[str, str] | None = None):
        super().__init__(message, hint)
        self.reasons = dict(reasons or {})


class BusyError(NoInstanceError):
    """Instances could serve the request, but every one is at its `max_inflight`."""
