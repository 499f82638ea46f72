"""What `run` and `embed` say when no healthy instance has the model: the core's listing of each
instance and its models, and a pull suggestion when this ollamactl has a `pull` command (asked of
the command table at run time, not assumed)."""

from __future__ import annotations

from ollamactl import ModelMissing
from ollamactl.cli import commands


def with_pull_hint(error: ModelMissing) -> ModelMissing:
    if "pull" in commands.COMMANDS:
        error.hint = f"pull it with `ollamactl pull {error.model}`, or use a model listed below"
    return error
