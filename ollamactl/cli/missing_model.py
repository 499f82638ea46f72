"""What `run` and `embed` say when no healthy instance has the model: the core's listing of each
instance and its models, and a pull suggestion when this ollamactl has a `pull` command."""

from __future__ import annotations

from typing import Any

from ollamactl.core.routing import ModelMissing


def has_command(ctx: Any, name: str) -> bool:
    """Whether the running app has a top-level command `name` (asked at run time, not assumed)."""
    root = ctx.find_root()
    return name in root.command.list_commands(root)


def with_pull_hint(error: ModelMissing, ctx: Any) -> ModelMissing:
    if has_command(ctx, "pull"):
        error.hint = f"pull it with `ollamactl pull {error.model}`, or use a model listed below"
    return error
