"""`ollamactl pick`'s body, shared by its fast parser and its Typer command: select, then print.

Stdlib only (the fast path imports it): output formats, `--explain` on stderr, and the exit path.
"""

from __future__ import annotations

import sys

from ollamactl.cli import exits, output
from ollamactl.cli.context import fleet
from ollamactl.core.errors import NoInstanceError, UsageError
from ollamactl.core.registry.keys import CLIENT_KEY_VAR, sent_key
from ollamactl.core.routing.router import Decision, Request

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


def explain(decision: Decision) -> None:
    width = max((len(i.id) for i in decision.instances), default=0)
    reasons = decision.explained()
    for instance in decision.instances:
        reason = reasons.get(instance.id, "not considered")
        output.message(f"{instance.id:<{width}}  {instance.url}  {reason}")


def _pick(request: Request, fmt: str, show_reasons: bool) -> int:
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if not show_reasons:
        picks = fleet().picks(request)  # from the pick memo when it stands (core/routing/pick_memo.py)
    else:
        try:
            decision = fleet().select(request)
        except NoInstanceError as error:  # the reasons as data: a reason may itself hold "; "
            for instance_id, reason in error.reasons.items():
                output.message(f"{instance_id}: {reason}")
            raise
        explain(decision)
        picks = decision.picks
    sys.stdout.write("".join(render_pick(i, fmt) + "\n" for i in picks))
    sys.stdout.flush()
    return 0


def execute(request: Request, fmt: str = "url", show_reasons: bool = False) -> int:
    """Run a pick and print it; returns the exit code."""
    return exits.guarded(lambda: _pick(request, fmt, show_reasons))
