"""`ollamactl pick`'s fast parser: the handful of flags `pick` takes, without Typer or argparse.

Shell loops call `pick` many times, so the entry point routes `ollamactl pick ...` here. The
options and their meaning are those of the Typer command in cli/pick_cmd.py (`pick --help` and
shell completion go there); a parity test keeps the two in step. Usage errors are one
`ollamactl: error: ...` line and exit 2, like every other command's.
"""

from __future__ import annotations

from ollamactl.cli.pick_exec import execute
from ollamactl.core.errors import UsageError
from ollamactl.core.routing.router import Request

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import NoReturn

# option spelling -> (field, takes a value)
_OPTIONS = {
    "-m": ("model", True), "--model": ("model", True),
    "-t": ("request_type", True), "--type": ("request_type", True),
    "-s": ("strategy", True), "--strategy": ("strategy", True),
    "--key": ("key", True),
    "-n": ("count", True), "--count": ("count", True),
    "-f": ("fmt", True), "--format": ("fmt", True),
    "--strict": ("strict", False), "--explain": ("explain", False), "--refresh": ("refresh", False),
}
_SEE_HELP = "see `ollamactl pick --help`"


def parse(argv: list[str]) -> tuple[Request, str, bool]:
    """The Request of a `pick` command line, refused in the words the Typer command would use."""
    values: dict[str, object] = {"fmt": "url", "count": "1"}
    extra: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        name, value = word, None
        if word.startswith("--") and "=" in word:
            name, value = word.split("=", 1)
        elif word.startswith("-") and not word.startswith("--") and len(word) > 2:
            name, value = word[:2], word[2:]  # -mllama3.2, as click accepts
        if name not in _OPTIONS:
            if word.startswith("-"):
                from ollamactl.cli.suggest import unknown_option

                raise unknown_option(name, _OPTIONS, "ollamactl pick")
            extra.append(word)
            continue
        field, takes_value = _OPTIONS[name]
        if not takes_value:
            if value is not None:
                raise UsageError(f"Option '{name}' does not take a value", _SEE_HELP)
            values[field] = True
            continue
        if value is None:
            if index >= len(argv):
                raise UsageError(f"Option '{name}' requires an argument", _SEE_HELP)
            value = argv[index]
            index += 1
        values[field] = value
    if extra:
        raise UsageError(f"Got unexpected extra argument(s) ({' '.join(extra)})", _SEE_HELP)
    count = str(values["count"])
    try:
        number = int(count)
    except ValueError:
        raise UsageError(f"Invalid value for '--count' / '-n': {count!r} is not a valid int", _SEE_HELP) from None
    request = Request(request_type=values.get("request_type"), model=values.get("model"),  # type: ignore[arg-type]
                      strategy=values.get("strategy"), key=values.get("key"), count=number,  # type: ignore[arg-type]
                      strict=bool(values.get("strict")), refresh=bool(values.get("refresh")))
    return request, str(values["fmt"]), bool(values.get("explain"))


def main(argv: list[str]) -> int:
    from ollamactl.cli import exits

    parsed: list[tuple[Request, str, bool]] = []
    code = exits.guarded(lambda: parsed.append(parse(argv)))
    return code if not parsed else execute(*parsed[0])


def run(argv: list[str]) -> NoReturn:
    """`main`, then the end of the process (see exits.leave): the console script's pick."""
    from ollamactl.cli import exits

    exits.leave(main(argv))
