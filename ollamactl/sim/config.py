"""Simulated servers' settings: constants, models and SimConfig, validated on every change."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ollamactl.model_names import normalise_model

FAULTS = ("refuse", "hang", "http500", "busy503", "garbage", "midstream", "truncated", "drip")

HOST = "127.0.0.1"
CONTROL_PATH = "/_sim/config"
DEFAULT_DIMENSIONS = 16
THINKING_TOKENS = 3

RUNNER_CRASHED = "llama runner process has terminated: exit status 2"
SERVER_BUSY = "server busy, please try again.  maximum pending requests exceeded"
PULL_UNKNOWN = "pull model manifest: file does not exist"
STREAM_BROKEN = "an error was encountered while running the model: unexpected EOF"
NOT_OLLAMA_PAGE = b"<html><body>It works!</body></html>"

# Reported metrics (nanoseconds). They describe a plausible run; only latency and token_rate are real.
NOMINAL_TOKEN_RATE = 100.0
WARM_LOAD_NS = 15_000_000
COLD_LOAD_NS = 1_500_000_000
PROMPT_NS_PER_TOKEN = 400_000
KEEP_ALIVE = timedelta(minutes=5)
FOREVER = datetime(2262, 4, 11, 23, 47, 16, tzinfo=timezone.utc)  # Go's largest time.Duration from now, roughly
CONTEXT_LENGTH = 4096

FLOAT_OPTIONS = frozenset(
    {"temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty"}
)
INT_OPTIONS = frozenset(
    {
        "num_predict",
        "num_ctx",
        "seed",
        "top_k",
        "num_keep",
        "repeat_last_n",
        "num_batch",
        "num_gpu",
        "num_thread",
    }
)
# Top-level request fields whose JSON type is checked (a Go server fails to unmarshal the others).
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "name": (str,),
    "prompt": (str,),
    "system": (str,),
    "stream": (bool,),
    "raw": (bool,),
    "truncate": (bool,),
    "messages": (list,),
    "options": (dict,),
    "input": (str, list),
    "dimensions": (int,),
    "think": (bool, str),
    "source": (str,),
    "destination": (str,),
    "insecure": (bool,),
}
MODEL_PATHS = frozenset({"/api/generate", "/api/chat", "/api/embed", "/api/embeddings",
                         "/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
LEGACY_MISSING = frozenset({"/api/embed", "/api/ps"})
ZERO_DURATION = re.compile(r"0+(\.0+)?(ns|us|µs|ms|s|m|h)?")  # keep_alive values that unload at once
GO_DURATION = re.compile(r"(-?)((?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# What "exists upstream" for /api/pull, besides any model some instance of the simulator holds.
CATALOGUE = {
    "llama3.2:latest": False,
    "llama3.2:1b": False,
    "llama3.1:8b": False,
    "qwen3:4b": False,
    "qwen3:8b": False,
    "qwen2.5:7b": False,
    "gemma3:4b": False,
    "mistral:latest": False,
    "nomic-embed-text:latest": True,
    "mxbai-embed-large:latest": True,
    "all-minilm:latest": True,
}  # name -> is an embedding model

WORDS = (
    "the", "quick", "model", "answers", "every", "question", "with", "calm", "and", "simple", "words",
    "while", "bright", "servers", "hum", "softly", "in", "a", "quiet", "room", "where", "tokens", "flow",
    "like", "water", "over", "smooth", "stones", "under", "silver", "light", "today",
)  # fmt: skip





def keep_alive_seconds(value: Any) -> float | None:
    """A keep_alive value in seconds as Ollama reads it: None for "forever" (negative), KEEP_ALIVE
    for an absent or unreadable value."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := GO_DURATION.fullmatch(value.strip())):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(match.group(2)))
        seconds = -seconds if match.group(1) else seconds
    else:
        return KEEP_ALIVE.total_seconds()
    return None if seconds < 0 else seconds


def upstream_model(name: str, embedding: bool | None = None, build: str | None = None) -> SimModel:
    """A model as the registry would serve it: the catalogue's kind unless told, and the current
    build's digest (another `build` label gives another, older digest)."""
    name = normalise_model(name)
    if embedding is None:
        embedding = CATALOGUE.get(name, "embed" in name)
    digest = hashlib.sha256(f"{name}@{build}".encode()).hexdigest() if build else None
    return SimModel(name, digest=digest, embedding=embedding)


def seed_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _default_size(name: str, embedding: bool) -> int:
    """Bytes on disk: from a "7b"-style tag when there is one, else a stable pick from the name."""
    tag = re.fullmatch(r"(\d+(?:\.\d+)?)b", name.rsplit(":", 1)[-1].lower())
    if tag:
        params = float(tag.group(1)) * 1e9
    elif embedding:
        params = 100e6 + seed_int(name) % 400_000_000
    else:
        params = 1e9 + seed_int(name) % 7_000_000_000
    return int(params * bytes_per_param(embedding))


def bytes_per_param(embedding: bool) -> float:
    return 2.0 if embedding else 0.6  # F16 embedding models, Q4_K_M chat models


def _check_types(config: Any, types: dict[str, Any]) -> None:
    """A ValueError naming the first field of the wrong JSON type (float: any finite number)."""
    for name, expected in types.items():
        value = getattr(config, name)
        if expected is float or (isinstance(expected, tuple) and float in expected):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if (number and math.isfinite(value)) or (value is None and expected is not float):
                continue
        elif isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
            continue
        raise ValueError(f"{name} has the wrong type or value: {value!r}")


@dataclass
class SimModel:
    """One model an instance serves; the name is normalised (always carries a tag)."""

    name: str
    digest: str | None = None
    embedding: bool = False
    size: int | None = None

    def __post_init__(self) -> None:
        _check_types(self, {"name": str, "digest": (str, type(None)), "embedding": bool,
                            "size": (int, type(None))})
        self.name = normalise_model(self.name)
        if self.digest is None:
            self.digest = hashlib.sha256(self.name.encode()).hexdigest()
        if self.size is None:
            self.size = _default_size(self.name, self.embedding)


def _as_model(value: SimModel | str | dict[str, Any]) -> SimModel:
    if isinstance(value, SimModel):
        return value
    if isinstance(value, str):
        return SimModel(value)
    if isinstance(value, dict):
        return SimModel(**value)
    raise ValueError(f"a model must be a name or an object, not {value!r}")


def _default_models() -> list[SimModel]:
    return [
        SimModel("llama3.2:latest"),
        SimModel("qwen2.5:7b"),
        SimModel("nomic-embed-text:latest", embedding=True),
    ]


@dataclass
class SimConfig:
    """How one simulated server behaves; validated on creation and on every change."""

    name: str = "sim"
    models: list[SimModel] = field(default_factory=_default_models)
    loaded: list[str] = field(default_factory=lambda: ["llama3.2:latest"])
    version: str = "0.12.6"
    latency: float = 0.0
    token_rate: float | None = None
    tokens: int = 12
    api_key: str | None = None
    fault: str | None = None
    legacy: bool = False
    drip_interval: float = 1.0
    pull_speed: float | None = None  # bytes/s of a simulated download; None: as fast as possible
    load_time: float = 0.0  # seconds a model not loaded takes to load before its first byte (the rest answers)

    def __post_init__(self) -> None:
        _check_types(self, {"name": str, "models": list, "loaded": list, "version": str, "latency": float,
                            "token_rate": (float, type(None)), "tokens": int, "api_key": (str, type(None)),
                            "fault": (str, type(None)), "legacy": bool, "drip_interval": float,
                            "pull_speed": (float, type(None)), "load_time": float})
        if not all(isinstance(name, str) for name in self.loaded):
            raise ValueError("loaded must be a list of model names")
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; choose from {', '.join(FAULTS)}")
        if self.latency < 0 or self.drip_interval < 0 or self.tokens < 0 or self.load_time < 0:
            raise ValueError("latency, drip_interval, tokens and load_time must not be negative")
        if self.token_rate is not None and self.token_rate <= 0:
            raise ValueError("token_rate must be positive (or None for as fast as possible)")
        if self.pull_speed is not None and self.pull_speed <= 0:
            raise ValueError("pull_speed must be positive (or None for as fast as possible)")
        self.models = [_as_model(model) for model in self.models]
        self.loaded = [normalise_model(name) for name in self.loaded]


@dataclass
class RecordedRequest:
    """One request as the instance received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when absent or not JSON

