"""`ollamactl pick`'s body, called by the Typer-free route (cli/fast_route.py) and by the Typer
command (pick_cmd.py) alike: select, then print in one of the output formats, `--explain` on stderr.

Stdlib only: the fast route imports it.
"""

from __future__ import annotations

import sys

from ollamactl import CLIENT_KEY_VAR, Decision, NoInstanceError, Request, UsageError, sent_key
from ollamactl.cli import output
from ollamactl.cli.context import fleet

FORMATS = ("url", "env", "openai", "json")


def render_pick(instance, fmt: str) -> str:
    if fmt == "url":
        return instance.url
    if fmt == "env":  # lines for `eval` (shell-quoted), the key's only for a keyed instance
        import shlex

        lines = [f"OLLAMA_HOST={shlex.quote(instance.url)}"]
        if key := sent_key(instance):
            lines.append(f"{CLIENT_KEY_VAR}={shlex.quote(key)}")
        return "\n".join(lines)
    if fmt == "openai":
        return f"{instance.url}/v1"
    import json

    return json.dumps({"id": instance.id, "name": instance.name, "url": instance.url, "type": instance.type,
                       "weight": instance.weight, "openai_url": f"{instance.url}/v1"}, allow_nan=False)


def show_reasons(decision: Decision) -> None:
    width = max((len(i.id) for i in decision.instances), default=0)
    reasons = decision.explained()
    for instance in decision.instances:
        reason = reasons.get(instance.id, "not considered")
        output.message(f"{instance.id:<{width}}  {instance.url}  {reason}")


def pick(model: str | None = None, request_type: str | None = None, strategy: str | None = None,
         key: str | None = None, count: int = 1, fmt: str = "url", strict: bool = False, explain: bool = False,
         refresh: bool = False) -> int:
    """`ollamactl pick` with its options by name (see cli/commands.py): select, print, the exit code."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    request = Request(request_type=request_type, model=model, strategy=strategy, key=key, count=count,
                      strict=strict, refresh=refresh)
    if not explain:
        picks = fleet().picks(request)  # from the pick memo when it stands (core/routing/pick_memo.py)
    else:
        try:
            decision = fleet().select(request)
        except NoInstanceError as error:  # the reasons as data: a reason may itself hold "; "
            for instance_id, reason in error.reasons.items():
                output.message(f"{instance_id}: {reason}")
            raise
        show_reasons(decision)
        picks = decision.picks
    sys.stdout.write("".join(render_pick(i, fmt) + "\n" for i in picks))
    sys.stdout.flush()
    return 0
