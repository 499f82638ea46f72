"""A loopback stand-in for Ollama servers, for tests, benchmarks, the tour and `ollamactl simulate`.

It owns the simulated server side of the Ollama HTTP API (the contract in the shared
ollama-api.md): the wire format of every endpoint ollamactl uses, deterministic answers
(text from model + prompt, vectors from the text alone), and the failure modes a fleet meets
(refused, hung, 500, 503 busy, non-Ollama server, broken or truncated streams, dripping bytes).

Everything runs on one asyncio loop in a daemon thread, over a hand-written HTTP/1.1 layer on
`asyncio.start_server`, so chunking, stalls and resets are exact. It uses the standard library
only, listens on 127.0.0.1 only, and imports nothing from the rest of ollamactl.

Modules: config (settings, models), wire (HTTP/1.1), validation (request checks as Ollama does
them), content (deterministic answers), endpoints (the routes), server (instances and runner).
"""

from ollamactl.sim.config import CONTROL_PATH, FAULTS, RecordedRequest, SimConfig, SimModel, upstream_model
from ollamactl.sim.server import SimInstance, Simulator, serve_forever

__all__ = ["CONTROL_PATH", "FAULTS", "RecordedRequest", "SimConfig", "SimInstance", "SimModel", "Simulator",
           "serve_forever", "upstream_model"]
