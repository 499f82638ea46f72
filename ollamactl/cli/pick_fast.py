"""`ollamactl pick`: output formats, `--explain`, and its stdlib-only fast parser.

Shell loops call `pick` many times, so the entry point routes `ollamactl pick ...` here without
importing Typer (and its pydantic). `ollamactl pick --help` and shell completion still go through
the Typer command in commands/routing_cmds.py, which calls the same `execute`.
"""

from __future__ import annotations

import json
import sys

from ollamactl.core.errors import ExitCode, OllamactlError, UsageError, report
from ollamactl.core.routing import Decision, Request, select

FORMATS = ("url", "env", "openai", "json")


def render_pick(instance, fmt: str) -> str:
    if fmt == "url":
        return instance.url
    if fmt == "env":
        return f"OLLAMA_HOST={instance.url}"
    if fmt == "openai":
        return f"{instance.url}/v1"
    return json.dumps({"id": instance.id, "name": instance.name, "url": instance.url, "type": instance.type,
                       "weight": instance.weight, "openai_url": f"{instance.url}/v1"})


def explain(decision: Decision) -> None:
    width = max((len(i.id) for i in decision.instances), default=0)
    for instance in decision.instances:
        reason = decision.reasons.get(instance.id, "not considered")
        sys.stderr.write(f"{instance.id:<{width}}  {instance.url}  {reason}\n")


def execute(request: Request, fmt: str = "url", show_reasons: bool = False) -> int:
    """Run a pick and print it; returns the exit code. Used by both parsers."""
    try:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
        try:
            decision = select(request)
        except OllamactlError as error:
            if show_reasons and error.hint:
                sys.stderr.write(error.hint.replace("; ", "\n") + "\n")
            raise
        if show_reasons:
            explain(decision)
        sys.stdout.write("".join(render_pick(i, fmt) + "\n" for i in decision.picks))
        sys.stdout.flush()
        return 0
    except OllamactlError as error:
        return report(error)
    except KeyboardInterrupt:  # Ctrl-C during a probe: the documented code, not a traceback
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `ollamactl pick -n 100 | head -1`: the reader left, nothing to say
        import contextlib
        import os

        with contextlib.suppress(OSError):  # io.UnsupportedOperation too: stdout may have no fd
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return int(ExitCode.FAILED)


def parse(argv: list[str]):  # type: ignore[no-untyped-def]
    import argparse

    parser = argparse.ArgumentParser(prog="ollamactl pick", add_help=False, allow_abbrev=False)  # as Typer
    parser.add_argument("-m", "--model")
    parser.add_argument("-t", "--type", dest="request_type")
    parser.add_argument("-s", "--strategy")
    parser.add_argument("--key")
    parser.add_argument("-n", "--count", type=int, default=1)
    parser.add_argument("--format", "-f", dest="fmt", default="url")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--refresh", action="store_true")
    args = parser.parse_args(argv)
    request = Request(request_type=args.request_type, model=args.model, strategy=args.strategy, key=args.key,
                      count=args.count, strict=args.strict, refresh=args.refresh)
    return request, args.fmt, args.explain


def main(argv: list[str]) -> int:
    request, fmt, show_reasons = parse(argv)
    return execute(request, fmt, show_reasons)
