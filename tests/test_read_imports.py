"""The everyday read commands start like tools: in a script (stdout not a terminal), `health`,
`models` and `ps` answer by the Typer-free route and load neither Typer nor rich; `health` and `ps`
ask their (http) servers on threads, without httpx, asyncio or ssl; `models` from a fresh cache asks
none. Proved by the modules a real process loaded, not by a timing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_helpers import REPORT_MODULES

from ollamactl.core.fleet import Fleet


def loaded(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `ollamactl ARGS` through the console script's entry point; its exit and the modules it
    had imported when it ended (sys.modules: the fast route imports its body with importlib)."""
    script = REPORT_MODULES + f"from ollamactl.cli.launcher import main; main({list(args)!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env=os.environ.copy())
    return result, set(result.stderr.split())


@pytest.fixture
def four(sim) -> list[str]:
    ids = [Fleet().add(sim.add(loaded=["llama3.2"]).url).id for _ in range(4)]
    Fleet().check()
    return ids


@pytest.mark.parametrize("args", [["health"], ["health", "--json"], ["models"], ["ps"], ["ps", "--json"]])
def test_read_commands_load_no_typer_nor_rich_in_a_script(four, args):
    result, modules = loaded(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not {"typer", "click", "rich"} & modules, args
    shown = four if args[0] == "health" else ["llama3.2"]  # health lists instances, models and ps the model
    assert all(word in result.stdout for word in shown), result.stdout


@pytest.mark.parametrize("args", [["health"], ["health", "--json"], ["ps"], ["ps", "--json"], ["models"]])
def test_one_shot_reads_load_no_asyncio_httpx_nor_ssl(four, args):
    result, modules = loaded(*args)
    assert result.returncode == 0 and not {"asyncio", "httpx", "ssl"} & modules, args
