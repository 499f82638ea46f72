"""Every table a person reads (list, health, the watch, ps, models) at 60, 80 and 120 columns: each
instance shown by its name (its id only when it has none), every row on one line, names whole;
`--json` unchanged. In-process the terminal's width is given to the layout (output.width); a real
process on a pseudo-terminal 60 columns wide checks what rich draws there."""

from __future__ import annotations

import io
import json

import pytest
from cli_helpers import run, written_to_a_terminal
from rich.console import Console

from ollamactl.cli import output
from ollamactl.core.fleet import Fleet
from ollamactl.sim import SimModel

WIDTHS = (60, 80, 120)
NAMES = ("sim-1", "sim-2", "gpu-box-basement")  # the last is 16 characters: readable, never cut


@pytest.fixture
def fleet_of_four(sim):
    """sim-1, sim-2 (answering HTTP 500), gpu-box-basement (two models loaded), and one without a name."""
    models = [SimModel("llama3.2"), SimModel("qwen2.5:7b"), SimModel("nomic-embed-text", embedding=True)]
    servers = [sim.add(), sim.add(fault="http500"), sim.add(models=models, loaded=["llama3.2", "qwen2.5:7b"]),
               sim.add(models=[SimModel("llama3.2")])]
    added = [Fleet().add(server.url, name=name) for server, name in zip(servers[:3], NAMES, strict=True)]
    unnamed = Fleet().add(servers[3].url)
    return added, unnamed


def rows_of(text: str, first: int) -> list[str]:
    """The table's lines from its first row on (after `first` lines of title and header)."""
    return [line for line in text.splitlines()[first:] if line.strip()]


def assert_fits(text: str, width: int, rows: int, first: int = 1) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    body = rows_of(text, first)
    assert len(body) == rows, body  # one line per row: nothing wrapped onto a line of its own
    return body


@pytest.mark.parametrize("width", WIDTHS)
def test_list_shows_names_first_and_fits(fleet_of_four, width, monkeypatch):
    added, unnamed = fleet_of_four
    monkeypatch.setattr(output, "width", lambda: width)
    table = run("list").stdout
    body = assert_fits(table, width, 4)
    assert [line.split()[0] for line in body] == [*NAMES, unnamed.id]  # names whole, first; the id when unnamed
    assert not any(i.id in table for i in added)  # the id (it repeats the URL) is not shown when a name is
    assert "ENABLED" in table.splitlines()[0]


@pytest.mark.parametrize("width", WIDTHS)
def test_health_shows_names_and_fits(fleet_of_four, width, monkeypatch):
    added, unnamed = fleet_of_four
    monkeypatch.setattr(output, "width", lambda: width)
    table = run("health", "--timeout", "5").stdout
    body = assert_fits(table, width, 4, first=2)  # the title, the header
    assert [line.split()[0] for line in body] == [*NAMES, unnamed.id]
    assert not any(i.id in table for i in added)
    assert "unhealthy" in body[1] and "HTTP 500" in body[1]


@pytest.mark.parametrize("width", WIDTHS)
def test_ps_shows_names_and_fits(fleet_of_four, width, monkeypatch):
    added, unnamed = fleet_of_four
    monkeypatch.setattr(output, "width", lambda: width)
    table = run("ps").stdout
    body = assert_fits(table, width, 5)  # gpu-box-basement holds two loaded models: two rows
    assert [line.split()[0] for line in body] == ["sim-1", "sim-2", "gpu-box-basement", "gpu-box-basement",
                                                  unnamed.id]
    assert body[2].split()[1] == "llama3.2:latest" and "unreachable" in body[1]
    assert not any(i.id in table for i in added)


@pytest.mark.parametrize("width", WIDTHS)
def test_models_shows_names_and_fits(fleet_of_four, width, monkeypatch):
    added, unnamed = fleet_of_four
    monkeypatch.setattr(output, "width", lambda: width)
    result = run("models")
    listing = json.loads(run("models", "--json").stdout)
    rows = sum(len(item["instances"]) for item in listing)
    body = assert_fits(result.stdout, width, rows)
    shown = [line.split()[0] if line.startswith(" ") else line.split()[1] for line in body]  # MODEL blank: same model
    assert set(shown) == {"sim-1", "gpu-box-basement", unnamed.id}  # sim-2 is unhealthy: its models are not listed
    assert not any(i.id in result.stdout for i in added)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_watch_shows_names_and_fits(fleet_of_four, width, monkeypatch):
    added, unnamed = fleet_of_four
    monkeypatch.setattr(output, "width", lambda: width)
    real_show = output.show

    def show_once(grid):
        real_show(grid)
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "show", show_once)
    result = run("health", "--watch", "--interval", "0.5")
    assert result.exit_code == 130
    body = assert_fits(result.stdout, width, 4, first=2)
    assert [line.split()[0] for line in body] == [*NAMES, unnamed.id]


@pytest.mark.parametrize("width", WIDTHS)
def test_on_a_terminal_rich_draws_the_same_rows_whole(width):
    """What a terminal gets (rich, with styles) has the plain layout: nothing wraps, names whole."""
    grid = output.Grid(("INSTANCE", "URL", "STATUS", "ERROR"),
                       [("gpu-box-basement", "http://127.0.0.1:11500", output.styled("unhealthy", "red"),
                         "HTTP 500: internal server error, try again later")],
                       "health at 12:00:00, state store: file /home/someone/.local/state/ollamactl/state.json",
                       drop=("URL",), cut={"ERROR": 10, "INSTANCE": 16})
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(output.renderable(grid, width))
    drawn = [line.rstrip() for line in console.file.getvalue().splitlines()]
    assert drawn == output.lines(grid, width)
    assert len(drawn) == 3 and all(len(line) <= width for line in drawn) and drawn[2].startswith("gpu-box-basement")


def test_json_keeps_ids(fleet_of_four):
    added, unnamed = fleet_of_four
    assert [row["id"] for row in json.loads(run("list", "--json").stdout)] == [*(i.id for i in added), unnamed.id]
    assert [row["id"] for row in json.loads(run("health", "--json").stdout)] == [*(i.id for i in added), unnamed.id]
    assert [row["id"] for row in json.loads(run("ps", "--json").stdout)] == [*(i.id for i in added), unnamed.id]


def on_a_terminal(columns: int, *args: str) -> list[str]:
    """`ollamactl ARGS` run on a pseudo-terminal `columns` wide: its screen lines, styles removed."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", written_to_a_terminal(*args, columns=columns).decode())
    return [line for line in text.replace("\r", "").splitlines() if line.strip()]


def test_on_a_real_terminal_60_columns_wide_list_and_health_keep_every_row_on_one_line(fleet_of_four):
    added, unnamed = fleet_of_four
    for args, first in ((["list"], 1), (["health", "--timeout", "5"], 2)):
        lines = on_a_terminal(60, *args)
        assert all(len(line) <= 60 for line in lines), lines
        assert [line.split()[0] for line in lines[first:]] == [*NAMES, unnamed.id], lines
