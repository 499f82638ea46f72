"""Running the Typer app in-process with stdout and stderr kept apart, as a user's terminal would."""

from __future__ import annotations

import inspect

from typer.testing import CliRunner

from ollamactl.cli.app import app


def make_runner() -> CliRunner:
    # Click < 8.2 mixes stderr into stdout unless told not to; 8.2+ (and Typer's own copy) keep them apart.
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


RUNNER = make_runner()


def run(*args: str, input: str | None = None):
    result = RUNNER.invoke(app, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"ollamactl {' '.join(args)} crashed") from result.exception
    return result


def ok(*args: str, input: str | None = None):
    result = run(*args, input=input)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
    assert lines[0].startswith("ollamactl: error: "), lines[0]
    return lines[0]
