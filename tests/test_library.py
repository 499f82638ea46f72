"""`from ollamactl import Fleet`: docs/library.md's example runs as written against the simulator,
and the library works without the CLI (no Typer or cli module loaded; rich and click only where
httpx's own command line loads them: the library leaves its host's modules alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ollamactl.core.errors import UsageError

LIBRARY_DOC = Path(__file__).resolve().parent.parent / "docs" / "library.md"
EXAMPLE_URL = "http://127.0.0.1:11500"


def doc_example() -> str:
    """The doc's first Python block."""
    return LIBRARY_DOC.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]


def test_the_doc_example_runs_without_the_cli(sim, isolated_env):
    server = sim.add()
    code = doc_example()
    assert EXAMPLE_URL in code
    code = code.replace(EXAMPLE_URL, server.url) + (
        "\nimport sys\n"
        "loaded = [m for m in sys.modules if m.startswith(('typer', 'ollamactl.cli'))]\n"
        "print('loaded:', loaded)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[True]" and lines[1] == server.url
    assert lines[2].strip()  # the generated text
    assert lines[3] == "2 []" and lines[4] == "loaded: []"
    assert [r.path for r in server.requests if r.path in ("/api/generate", "/api/embed")] == \
        ["/api/generate", "/api/embed"]


def test_errors_and_warnings_are_data_not_printed(fleet, capsys):
    with pytest.raises(UsageError) as refused:
        fleet.add("http://bad host")
    assert refused.value.exit_code == 2 and "bad host" in refused.value.message
    assert fleet.pick() == [fleet.default_instance]  # nothing registered: the default, no probe
    fleet.targets()
    assert fleet.warnings and "no instances registered" in fleet.warnings[0]
    assert capsys.readouterr() == ("", "")


def test_a_key_quoted_in_a_warning_is_scrubbed(fleet, monkeypatch):
    monkeypatch.setenv("GPU_KEY", "sk-quoted-in-a-warning-42")
    fleet.add("http://gpu1:11434", api_key_env="GPU_KEY")
    fleet.warn("gpu1 said: token sk-quoted-in-a-warning-42 expired")
    assert fleet.warnings == ["gpu1 said: token *** expired"]
