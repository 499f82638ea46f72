"""Pytest fixtures for the Ollama simulator (a plugin named in conftest.py)."""

from collections.abc import Iterator

import pytest

from ollamactl.sim import SimInstance, Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A running Simulator; every instance it started is stopped at teardown."""
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def sim_instance(sim: Simulator) -> SimInstance:
    """One simulated Ollama server with the default models, listening on a free loopback port."""
    return sim.add()
