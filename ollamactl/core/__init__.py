"""The core: everything ollamactl does, without printing, Typer or rich (see fleet.Fleet)."""
