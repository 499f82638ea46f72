"""Where the registry and the state live: environment overrides first, then the user's dirs.

On Linux the XDG rules are applied inline (the same answers as platformdirs, checked by a test)
so that `pick` does not pay for importing platformdirs; other systems ask platformdirs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


def registry_file() -> Path:
    """The registry as named: `$OLLAMACTL_CONFIG`, else `<config dir>/ollamactl/instances.toml`."""
    override = os.environ.get("OLLAMACTL_CONFIG", "").strip()
    return Path(os.path.expanduser(override)) if override else user_config_dir() / REGISTRY_NAME


def registry_target() -> Path:
    """The file that is actually written: a symlinked registry is written through to its target."""
    return Path(os.path.realpath(registry_file()))


def backup_file() -> Path:
    target = registry_target()
    return target.with_name(target.name + ".bak")


def registry_lock_file() -> Path:
    target = registry_target()
    return target.with_name(target.name + ".lock")


def state_dir() -> Path:
    override = os.environ.get("OLLAMACTL_STATE_DIR", "").strip()
    return Path(os.path.expanduser(override)) if override else user_state_dir()


def state_file() -> Path:
    return state_dir() / STATE_NAME


def state_lock_file() -> Path:
    return state_dir() / "state.lock"
