"""A loopback stand-in for Ollama servers, for tests, benchmarks, the tour and `ollamactl simulate`.

It owns the simulated server side of the Ollama HTTP API (the contract in the shared
ollama-api.md): the wire format of every endpoint ollamactl uses, deterministic answers
(text from model + prompt, vectors from the text alone), and the failure modes a fleet meets
(refused, hung, 500, 503 busy, non-Ollama server, broken or truncated streams, dripping bytes).

Everything runs on one asyncio loop in a daemon thread, over a hand-written HTTP/1.1 layer on
`asyncio.start_server`, so chunking, stalls and resets are exact. It uses the standard library
only, listens on 127.0.0.1 only, and imports nothing from the rest of ollamactl.

Modules, each importing only those listed before it: wire (HTTP/1.1), config (settings, models),
validation (request checks as Ollama does them), content (deterministic answers), state (one
instance's models and config, no HTTP), library (pull, delete, copy), endpoints (the native routes),
openai_compat (the /v1 routes), server (sockets, faults, the Simulator and the foreground runner).
"""

from ollamactl.sim.config import CONTROL_PATH, FAULTS, RecordedRequest, SimConfig, SimModel, upstream_model
from ollamactl.sim.server import SimInstance, Simulator, serve_forever

__all__ = ["CONTROL_PATH", "FAULTS", "RecordedRequest", "SimConfig", "SimInstance", "SimModel", "Simulator",
           "serve_forever", "upstream_model"]
