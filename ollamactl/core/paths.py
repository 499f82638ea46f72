"""Where the registry and the state live: environment overrides first, then the user's dirs.

On Linux the XDG rules are applied inline (the same answers as platformdirs, checked by a test)
so that `pick` does not pay for importing platformdirs; other systems ask platformdirs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

APP = "ollamactl"
REGISTRY_NAME = "instances.toml"
STATE_NAME = "state.json"


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "").strip()
    return Path(value if os.path.isabs(value) else os.path.expanduser(fallback))  # the XDG spec ignores relative


def user_config_dir() -> Path:
    if sys.platform.startswith("linux"):
        return _xdg("XDG_CONFIG_HOME", "~/.config") / APP
    import platformdirs

    return platformdirs.user_config_path(APP, appauthor=False)


def user_state_dir() -> Path:
    if sys.platform.startswith("linux"):
        return _xdg("XDG_STATE_HOME", "~/.local/state") / APP
    import platformdirs

    return platformdirs.user_state_path(APP, appauthor=False)


class Locations(NamedTuple):
    """Where one fleet's files are: resolved once, at the edge (`Fleet`), then passed in.

    `registry` is the file as named (a symlink stays a link); writes go to `registry_target`.
    """

    registry: Path
    state_dir: Path

    @classmethod
    def resolve(cls, config: str | os.PathLike[str] | None = None,
                state_dir: str | os.PathLike[str] | None = None) -> Locations:
        """Given paths win; for the others `$OLLAMACTL_CONFIG` / `$OLLAMACTL_STATE_DIR`, then the user's dirs."""
        return cls(_given(config, "OLLAMACTL_CONFIG") or user_config_dir() / REGISTRY_NAME,
                   _given(state_dir, "OLLAMACTL_STATE_DIR") or user_state_dir())

    @property
    def registry_target(self) -> Path:
        """The file that is actually written: a symlinked registry is written through to its target."""
        return Path(os.path.realpath(self.registry))

    @property
    def backup(self) -> Path:
        target = self.registry_target
        return target.with_name(target.name + ".bak")

    @property
    def registry_lock(self) -> Path:
        target = self.registry_target
        return target.with_name(target.name + ".lock")

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_NAME

    @property
    def state_lock(self) -> Path:
        return self.state_dir / "state.lock"


def _given(value: str | os.PathLike[str] | None, variable: str) -> Path | None:
    text = os.fspath(value) if value is not None else os.environ.get(variable, "").strip()
    return Path(os.path.expanduser(text)) if text else None
