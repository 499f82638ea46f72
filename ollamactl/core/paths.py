"""Where the registry and the state live: environment overrides first, then the user's dirs.

On Linux the XDG rules are applied inline (the same answers as platformdirs, checked by a test)
so that `pick` does not pay for importing platformdirs; other systems ask platformdirs. `where`
gives plain strings (`pick` does not import pathlib); `Locations` the same places as Paths.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path
    from typing import NamedTuple as Record
else:
    from ollamactl.core.records import Record

APP = "ollamactl"
REGISTRY_NAME = "instances.toml"
STATE_NAME = "state.json"


def _xdg(variable: str, fallback: str) -> str:
    value = os.environ.get(variable, "").strip()
    return value if os.path.isabs(value) else os.path.expanduser(fallback)  # the XDG spec ignores relative


def user_config_dir() -> str:
    """The user's config dir for ollamactl (the registry's default home)."""
    if sys.platform.startswith("linux"):
        return os.path.join(_xdg("XDG_CONFIG_HOME", "~/.config"), APP)
    import platformdirs

    return platformdirs.user_config_dir(APP, appauthor=False)


def user_state_dir() -> str:
    """The user's state dir for ollamactl (the state's default home)."""
    if sys.platform.startswith("linux"):
        return os.path.join(_xdg("XDG_STATE_HOME", "~/.local/state"), APP)
    import platformdirs

    return platformdirs.user_state_dir(APP, appauthor=False)


def where(config: str | os.PathLike[str] | None = None,
          state_dir: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """(registry file, state dir): given paths win; for the others `$OLLAMACTL_CONFIG` /
    `$OLLAMACTL_STATE_DIR`, then the user's dirs."""
    return (_given(config, "OLLAMACTL_CONFIG") or os.path.join(user_config_dir(), REGISTRY_NAME),
            _given(state_dir, "OLLAMACTL_STATE_DIR") or user_state_dir())


class Locations(Record):
    """Where one fleet's files are: resolved once, at the edge (`Fleet`), then passed in.

    `registry` is the file as named (a symlink stays a link); writes go to `registry_target`.
    """

    registry: Path
    state_dir: Path

    @classmethod
    def resolve(cls, config: str | os.PathLike[str] | None = None,
                state_dir: str | os.PathLike[str] | None = None) -> Locations:
        """See `where`."""
        from pathlib import Path

        registry, state = where(config, state_dir)
        return cls(Path(registry), Path(state))

    @property
    def registry_target(self) -> Path:
        """The file that is actually written: a symlinked registry is written through to its target."""
        from pathlib import Path

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


def _given(value: str | os.PathLike[str] | None, variable: str) -> str | None:
    text = os.fspath(value) if value is not None else os.environ.get(variable, "").strip()
    return os.path.expanduser(text) if text else None
