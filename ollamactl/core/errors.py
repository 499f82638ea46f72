"""Error types and exit codes: what went wrong, in words a user can act on, and the code to exit with."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


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
class Said(str):
    """Words that name a parameter, which a front end may call otherwise (the CLI: by its flag).

    `template` is a `str.format` template: a field given in `values` is a value (quoted user
    input, never read as a template itself; a Said among them is named with the rest); any other
    field is a parameter, `{listen}`, or passing a value to it, `{include_disabled=True}`. The
    string itself is the library's words (`listen`, `include_disabled=True`); `named(names)` gives
    a front end's: each parameter under its name in `names`, `{p=True}` as that name alone,
    `{p=v}` as the name and `v` (`--format nginx`).
    """

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, **values: Any) -> Said:
        said = super().__new__(cls, template.format_map(_Spelled(values, {})))
        said.template = template
        said.values = values
        return said

    def named(self, names: dict[str, str]) -> str:
        values = {key: value.named(names) if isinstance(value, Said) else value for key, value in self.values.items()}
        return self.template.format_map(_Spelled(values, names))


class _Spelled(dict):  # type: ignore[type-arg]
    """The fields of a Said: its values, then each parameter as `names` (else the library) spells it."""

    def __init__(self, values: dict[str, Any], names: dict[str, str]):
        super().__init__(values)
        self.names = names

    def __missing__(self, field: str) -> str:
        param, passed, value = field.partition("=")
        if param not in self.names:
            return field
        return self.names[param] if not passed or value == "True" else f"{self.names[param]} {value}"


class OllamactlError(Exception):
    """An error the user can act on: `message` says what went wrong, `hint` what to do, and
    `details` holds facts that belong on lines of their own (one per attempt, one per instance).
    A message or hint that names a parameter is a `Said`; `named` gives the error in a front end's words."""

    exit_code = ExitCode.FAILED
    details: tuple[str, ...] = ()

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def named(self, names: dict[str, str]) -> OllamactlError:
        """The same error, each parameter its message and hint name under its name in `names`."""
        shown = type(self).__new__(type(self))
        shown.__dict__.update(self.__dict__)
        shown.message = self.message.named(names) if isinstance(self.message, Said) else self.message
        shown.hint = self.hint.named(names) if isinstance(self.hint, Said) else self.hint
        return shown

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
        subject = " and ".join(f"{{{param}}}" for param in params)
        super().__init__(Said(subject + " {problem}", problem=problem), hint)
        self.params = params
        self.problem = problem


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
