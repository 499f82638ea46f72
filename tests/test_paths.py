"""Where the registry and state live: the env overrides, and parity with platformdirs on Linux."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs
import pytest

from ollamactl.core import paths
from ollamactl.core.fleet import Fleet

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="paths.py inlines XDG on Linux only")


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def assert_parity():
    assert Path(paths.user_config_dir()) == platformdirs.user_config_path("ollamactl", appauthor=False)
    assert Path(paths.user_state_dir()) == platformdirs.user_state_path("ollamactl", appauthor=False)


@linux_only
def test_parity_without_xdg_variables(xdg, tmp_path):
    assert_parity()
    assert Path(paths.user_config_dir()) == tmp_path / "home" / ".config" / "ollamactl"
    assert Path(paths.user_state_dir()) == tmp_path / "home" / ".local" / "state" / "ollamactl"


@linux_only
def test_parity_with_xdg_variables(xdg, tmp_path):
    xdg.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    xdg.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    assert_parity()
    assert Path(paths.user_config_dir()) == tmp_path / "cfg" / "ollamactl"
    assert Path(paths.user_state_dir()) == tmp_path / "st" / "ollamactl"


@linux_only
def test_parity_with_empty_xdg_variables(xdg):
    xdg.setenv("XDG_CONFIG_HOME", "")
    xdg.setenv("XDG_STATE_HOME", "")
    assert_parity()


def test_registry_and_state_default_to_the_user_dirs(xdg, monkeypatch):
    monkeypatch.delenv("OLLAMACTL_CONFIG")
    monkeypatch.delenv("OLLAMACTL_STATE_DIR")
    assert Fleet().locations.registry == Path(paths.user_config_dir()) / "instances.toml"
    assert Fleet().locations.state_file.parent == Path(paths.user_state_dir())
    assert Fleet().locations.backup == real(Path(paths.user_config_dir()) / "instances.toml.bak")


def test_overrides_win_and_expand_the_home_directory(xdg, tmp_path, monkeypatch):
    xdg.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("OLLAMACTL_CONFIG", "~/fleet.toml")
    monkeypatch.setenv("OLLAMACTL_STATE_DIR", "~/fleet-state")
    assert Fleet().locations.registry == tmp_path / "home" / "fleet.toml"
    assert Fleet().locations.state_dir == tmp_path / "home" / "fleet-state"
    assert Fleet().locations.backup == real(tmp_path / "home" / "fleet.toml.bak")
