"""A loopback stand-in for Ollama servers, for tests, benchmarks and `ollamactl simulate`.

This module owns the simulated server side of the Ollama HTTP API (the contract in the shared
ollama-api.md): the wire format of every endpoint ollamactl uses, deterministic answers
(text from model + prompt, vectors from the text alone), and the failure modes a fleet meets
(refused, hung, 500, 503 busy, non-Ollama server, broken or truncated streams, dripping bytes).

Everything runs on one asyncio loop in a daemon thread, over a hand-written HTTP/1.1 layer on
`asyncio.start_server`, so chunking, stalls and resets are exact. It uses the standard library
only and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

__all__ = [
    "FAULTS",
    "RecordedRequest",
    "SimConfig",
    "SimInstance",
    "SimModel",
    "Simulator",
    "serve_forever",
]

FAULTS = ("refuse", "hang", "http500", "busy503", "garbage", "midstream", "truncated", "drip")

HOST = "127.0.0.1"
CONTROL_PATH = "/_sim/config"
DEFAULT_DIMENSIONS = 16
THINKING_TOKENS = 3

RUNNER_CRASHED = "llama runner process has terminated: exit status 2"
SERVER_BUSY = "server busy, please try again.  maximum pending requests exceeded"
STREAM_BROKEN = "an error was encountered while running the model: unexpected EOF"
NOT_OLLAMA_PAGE = b"<html><body>It works!</body></html>"

# Reported metrics (nanoseconds). They describe a plausible run; only latency and token_rate are real.
NOMINAL_TOKEN_RATE = 100.0
WARM_LOAD_NS = 15_000_000
COLD_LOAD_NS = 1_500_000_000
PROMPT_NS_PER_TOKEN = 400_000
KEEP_ALIVE = timedelta(minutes=5)
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
}
MODEL_PATHS = frozenset({"/api/generate", "/api/chat", "/api/embed", "/api/embeddings"})
LEGACY_MISSING = frozenset({"/api/embed", "/api/ps"})
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # left unpaired by json.loads
ZERO_DURATION = re.compile(r"0+(\.0+)?(ns|us|µs|ms|s|m|h)?")  # keep_alive values that unload at once

WORDS = (
    "the", "quick", "model", "answers", "every", "question", "with", "calm", "and", "simple", "words",
    "while", "bright", "servers", "hum", "softly", "in", "a", "quiet", "room", "where", "tokens", "flow",
    "like", "water", "over", "smooth", "stones", "under", "silver", "light", "today",
)  # fmt: skip

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Configuration


def normalize_model_name(name: str) -> str:
    """Ollama's name matching: drop the default registry and namespace, add ":latest" when untagged."""
    name = name.strip()
    for prefix in ("registry.ollama.ai/", "library/"):
        name = name.removeprefix(prefix)
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _seed_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _default_size(name: str, embedding: bool) -> int:
    """Bytes on disk: from a "7b"-style tag when there is one, else a stable pick from the name."""
    tag = re.fullmatch(r"(\d+(?:\.\d+)?)b", name.rsplit(":", 1)[-1].lower())
    if tag:
        params = float(tag.group(1)) * 1e9
    elif embedding:
        params = 100e6 + _seed_int(name) % 400_000_000
    else:
        params = 1e9 + _seed_int(name) % 7_000_000_000
    return int(params * _bytes_per_param(embedding))


def _bytes_per_param(embedding: bool) -> float:
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
        self.name = normalize_model_name(self.name)
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

    def __post_init__(self) -> None:
        _check_types(self, {"name": str, "models": list, "loaded": list, "version": str, "latency": float,
                            "token_rate": (float, type(None)), "tokens": int, "api_key": (str, type(None)),
                            "fault": (str, type(None)), "legacy": bool, "drip_interval": float})
        if not all(isinstance(name, str) for name in self.loaded):
            raise ValueError("loaded must be a list of model names")
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; choose from {', '.join(FAULTS)}")
        if self.latency < 0 or self.drip_interval < 0 or self.tokens < 0:
            raise ValueError("latency, drip_interval and tokens must not be negative")
        if self.token_rate is not None and self.token_rate <= 0:
            raise ValueError("token_rate must be positive (or None for as fast as possible)")
        self.models = [_as_model(model) for model in self.models]
        self.loaded = [normalize_model_name(name) for name in self.loaded]


@dataclass
class RecordedRequest:
    """One request as the instance received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when absent or not JSON


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 wire layer


class _BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.1 request we can read."""


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    raw_body: bytes

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    close: bool = False


@dataclass
class _Stream:
    """An NDJSON answer: `lines` paced by `interval`, then `final` (None: the stream just stops)."""

    lines: list[dict[str, Any]]
    final: dict[str, Any] | None
    interval: float


def _json_reply(status: int, payload: Any, close: bool = False) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return _Reply(status, body, "application/json; charset=utf-8", close)


def _text_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode(), "text/plain; charset=utf-8")


def _error(status: int, message: str) -> _Reply:
    return _json_reply(status, {"error": message})


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError as exc:  # a line longer than the stream's limit
        raise _BadRequest("line too long") from exc


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Request | None:
    """Read one request; None when the client closed the connection between requests."""
    line = await _readline(reader)
    while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112, 2.2)
        line = await _readline(reader)
    if not line:
        return None
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(f"bad request line {line[:80]!r}")
    method, target, version = parts
    headers = await _read_headers(reader)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await _read_body(reader, headers)
    return _Request(method, target.split("?", 1)[0], version, headers, body)


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = await _readline(reader)
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise _BadRequest(f"bad header line {line[:80]!r}")
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _BadRequest("bad Content-Length") from exc
    if length < 0:
        raise _BadRequest("bad Content-Length")
    return await reader.readexactly(length)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await _readline(reader)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequest("bad chunk size") from exc
        if size == 0:
            while (await _readline(reader)) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Date: {formatdate(usegmt=True)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Wire:
    """Writes one response; in drip mode one byte per drip_interval while the fault stays "drip"."""

    def __init__(self, instance: SimInstance, writer: asyncio.StreamWriter, drip: bool) -> None:
        self.instance = instance
        self.writer = writer
        self.drip = drip

    async def send(self, data: bytes) -> None:
        if self.drip:
            data = await self._drip(data)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _drip(self, data: bytes) -> bytes:
        """Write byte by byte until done or the fault changes; return what is left to write."""
        for offset in range(len(data)):
            if self.instance.config.fault != "drip":
                return data[offset:]
            await asyncio.sleep(self.instance.config.drip_interval)
            self.writer.write(data[offset : offset + 1])
            await self.writer.drain()
        return b""

    async def reply(self, reply: _Reply, head_only: bool, keep_alive: bool) -> None:
        headers = [("Content-Type", reply.content_type)] if reply.content_type else []
        headers.append(("Content-Length", str(len(reply.body))))
        if not keep_alive:
            headers.append(("Connection", "close"))
        await self.send(_head(reply.status, headers) + (b"" if head_only else reply.body))

    async def stream(self, stream: _Stream, keep_alive: bool) -> None:
        headers = [("Content-Type", "application/x-ndjson"), ("Transfer-Encoding", "chunked")]
        if not keep_alive:
            headers.append(("Connection", "close"))
        await self.send(_head(200, headers))
        for line in stream.lines:
            if stream.interval:
                await asyncio.sleep(stream.interval)
            await self.send(_chunk(line))
        if stream.final is not None:
            await self.send(_chunk(stream.final))
        await self.send(b"0\r\n\r\n")


def _chunk(line: dict[str, Any]) -> bytes:
    if "created_at" in line:
        line = {**line, "created_at": _now()}
    data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _allowed_host(host_header: str) -> bool:
    """Ollama's check for a loopback-bound server: loopback/private/unspecified IPs and local names."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("", "localhost") or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


# ---------------------------------------------------------------------------------------------
# Request validation


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parse_body(raw: bytes) -> tuple[Any, str | None]:
    """(value, None) or (None, a Go-like decoding error)."""
    if not raw.strip():
        return None, "missing request body"
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return None, "invalid character in request body: not UTF-8"
    except json.JSONDecodeError as exc:
        if exc.pos >= len(exc.doc.rstrip()):
            return None, "unexpected EOF"
        return None, f"invalid character {exc.doc[exc.pos]!r} looking for beginning of value"
    if _SURROGATE_ESCAPE.search(raw):  # Go decodes an unpaired \udXXX escape as U+FFFD
        value = _without_lone_surrogates(value)
    return value, None


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def _json_kind(value: Any) -> str:
    kinds = {bool: "bool", str: "string", list: "array", dict: "object", type(None): "null"}
    return kinds.get(type(value), "number")


def _check_fields(body: dict[str, Any]) -> None:
    for key, types in FIELD_TYPES.items():
        value = body.get(key)
        wrong_bool = isinstance(value, bool) and bool not in types
        if value is not None and (wrong_bool or not isinstance(value, types)):
            raise _ApiError(400, f"json: cannot unmarshal {_json_kind(value)} into Go struct field .{key}")


def _check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    options = options or {}
    for key, value in options.items():
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in FLOAT_OPTIONS and not is_number:
            raise _ApiError(400, f"option {json.dumps(key)} must be of type float32")
        if key in INT_OPTIONS and not (is_number and float(value).is_integer()):
            raise _ApiError(400, f"option {json.dumps(key)} must be of type integer")
        if key == "stop" and not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
            raise _ApiError(400, 'option "stop" must be of type array of strings')
    return options


def _check_format(value: Any) -> Any:
    if value in (None, "") or value == "json" or isinstance(value, dict):
        return value or None
    raise _ApiError(400, 'invalid format: expected "json" or a valid JSON schema')


def _find_model(config: SimConfig, name: str) -> SimModel | None:
    wanted = normalize_model_name(name)
    return next((model for model in config.models if model.name == wanted), None)


def _model_for(config: SimConfig, name: str | None, use: str) -> SimModel:
    """The requested model, checked for `use`: "generate", "chat", "embed" or "show"."""
    if not name:
        raise _ApiError(400, "model is required")
    model = _find_model(config, name)
    if model is None:
        if use == "embed":
            raise _ApiError(404, f"model {json.dumps(name)} not found, try pulling it first")
        raise _ApiError(404, f"model '{name}' not found")
    if use == "embed" and not model.embedding:
        raise _ApiError(400, f"{json.dumps(name)} does not support embeddings")
    if use in ("generate", "chat") and model.embedding:
        raise _ApiError(400, f"{json.dumps(name)} does not support {use}")
    return model


def _unloads(keep_alive: Any) -> bool:
    if isinstance(keep_alive, bool):
        return False
    if isinstance(keep_alive, (int, float)):
        return keep_alive == 0
    return isinstance(keep_alive, str) and ZERO_DURATION.fullmatch(keep_alive) is not None


# ---------------------------------------------------------------------------------------------
# Deterministic content


def _words(seed: str, count: int) -> list[str]:
    words: list[str] = []
    block = 0
    while len(words) < count:
        digest = hashlib.sha256(f"{seed}\0{block}".encode()).digest()
        words.extend(WORDS[byte % len(WORDS)] for byte in digest)
        block += 1
    return words[:count]


def _text_fragments(words: list[str]) -> list[str]:
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


def _json_fragments(words: list[str], schema: Any) -> list[str]:
    """A JSON document (schema-shaped when a schema has properties) cut into one piece per token."""
    text = " ".join(words)
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict) and properties:
        document = {key: _schema_sample(spec, text) for key, spec in properties.items()}
    else:
        document = {"answer": text}
    encoded = json.dumps(document)
    size = math.ceil(len(encoded) / max(len(words), 1))
    return [encoded[start : start + size] for start in range(0, len(encoded), size)]


def _schema_sample(spec: Any, text: str) -> Any:
    kind = spec.get("type") if isinstance(spec, dict) else None
    samples = {
        "integer": len(text.split()),
        "number": float(len(text)),
        "boolean": True,
        "array": text.split(),
    }
    return samples.get(kind, {} if kind == "object" else text)


def _token_id(word: str) -> int:
    return _seed_int(word) % 128_000


def _embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector seeded by the text alone (so every instance and endpoint agrees)."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in values))
    return [value / norm for value in values]


def _metrics(config: SimConfig, prompt_tokens: int, eval_count: int | None, cold: bool) -> dict[str, int]:
    """Final-line durations (ns), zero fields omitted like Ollama; eval_count None for embeddings."""
    load_ns = COLD_LOAD_NS if cold else WARM_LOAD_NS
    prompt_ns = prompt_tokens * PROMPT_NS_PER_TOKEN
    eval_ns = round((eval_count or 0) / (config.token_rate or NOMINAL_TOKEN_RATE) * 1e9)
    fields = {
        "total_duration": round(config.latency * 1e9) + load_ns + prompt_ns + eval_ns,
        "load_duration": load_ns,
        "prompt_eval_count": prompt_tokens,
    }
    if eval_count is not None:
        fields |= {"prompt_eval_duration": prompt_ns, "eval_count": eval_count, "eval_duration": eval_ns}
    return {key: value for key, value in fields.items() if value}


def _details(model: SimModel) -> dict[str, Any]:
    base = model.name.rsplit("/", 1)[-1].split(":", 1)[0]
    family = re.match(r"[a-z]*", base.lower()).group() or "llama"
    params = model.size / _bytes_per_param(model.embedding)
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.0f}M",
        "quantization_level": "F16" if model.embedding else "Q4_K_M",
    }


def _modified_at(model: SimModel) -> str:
    stamp = datetime(2025, 6, 1, 12, tzinfo=timezone.utc) + timedelta(minutes=_seed_int(model.name) % 130_000)
    return stamp.isoformat().replace("+00:00", "Z")


def _listing(model: SimModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": _modified_at(model),
        "size": model.size,
        "digest": model.digest,
        "details": _details(model),
    }


def _shape(use: str, content: str, thinking: str = "") -> dict[str, Any]:
    """The text-carrying part of a generate ("response") or chat ("message") object."""
    if use == "generate":
        return {"response": content, "thinking": thinking} if thinking else {"response": content}
    message = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    return {"message": message}


def _prompt(body: dict[str, Any], use: str) -> tuple[str | None, str]:
    """(the text the answer derives from, or None for a load-only request; all prompt text)."""
    if use == "generate":
        prompt = body.get("prompt") or ""
        return (prompt or None), f"{body.get('system') or ''} {prompt}"
    messages = body.get("messages") or []
    if not all(isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages):
        raise _ApiError(400, "json: cannot unmarshal messages: each message needs a role and string content")
    if not messages:
        return None, ""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return (users[-1] if users else ""), " ".join(m.get("content", "") for m in messages)


# ---------------------------------------------------------------------------------------------
# Endpoints


async def _root(instance: SimInstance, body: Any) -> _Reply:
    return _text_reply(200, "Ollama is running")


async def _version(instance: SimInstance, body: Any) -> _Reply:
    return _json_reply(200, {"version": instance.config.version})


async def _tags(instance: SimInstance, body: Any) -> _Reply:
    return _json_reply(200, {"models": [_listing(model) for model in instance.config.models]})


async def _ps(instance: SimInstance, body: Any) -> _Reply:
    expires = (datetime.now(timezone.utc) + KEEP_ALIVE).isoformat().replace("+00:00", "Z")
    config = instance.config
    loaded = [model for model in config.models if model.name in config.loaded]
    running = [
        {**_listing(m), "expires_at": expires, "size_vram": m.size, "context_length": CONTEXT_LENGTH}
        for m in loaded
    ]
    return _json_reply(200, {"models": running})


async def _show(instance: SimInstance, body: dict[str, Any]) -> _Reply:
    model = _model_for(instance.config, body.get("model") or body.get("name"), "show")
    details = _details(model)
    family = details["family"]
    info = {
        "general.architecture": family,
        "general.parameter_count": round(model.size / _bytes_per_param(model.embedding)),
        f"{family}.context_length": CONTEXT_LENGTH,
        f"{family}.embedding_length": DEFAULT_DIMENSIONS,
    }
    return _json_reply(
        200,
        {
            "modelfile": f"# Modelfile generated by the ollamactl simulator\nFROM {model.name}\n",
            "parameters": 'stop "<|end|>"',
            "template": "{{ .Prompt }}",
            "details": details,
            "model_info": info,
            "capabilities": ["embedding"] if model.embedding else ["completion"],
            "modified_at": _modified_at(model),
        },
    )


async def _generate(instance: SimInstance, body: dict[str, Any]) -> _Reply | _Stream:
    return _completion(instance, body, "generate")


async def _chat(instance: SimInstance, body: dict[str, Any]) -> _Reply | _Stream:
    return _completion(instance, body, "chat")


def _completion(instance: SimInstance, body: dict[str, Any], use: str) -> _Reply | _Stream:
    config = instance.config
    model = _model_for(config, body.get("model"), use)
    options = _check_options(body.get("options"))
    schema = _check_format(body.get("format"))
    source, prompt_text = _prompt(body, use)
    unload = _unloads(body.get("keep_alive"))
    cold = model.name not in config.loaded
    instance._mark_loaded(model.name, not unload)
    head = {"model": body["model"], "created_at": _now()}
    if source is None:
        return _json_reply(
            200, {**head, **_shape(use, ""), "done": True, "done_reason": "unload" if unload else "load"}
        )

    limit = options.get("num_predict")
    capped = limit is not None and limit >= 0
    words = _words(f"{model.name}\0{source}", min(int(limit), CONTEXT_LENGTH) if capped else config.tokens)
    content = _json_fragments(words, schema) if schema else _text_fragments(words)
    thinking = (
        _text_fragments(_words(f"think\0{model.name}\0{source}", THINKING_TOKENS))
        if body.get("think")
        else []
    )

    prompt_tokens = len(prompt_text.split())
    final = {"done": True, "done_reason": "length" if capped else "stop"}
    if use == "generate":
        final["context"] = [_token_id(word) for word in prompt_text.split() + words]
    final |= _metrics(config, prompt_tokens, len(thinking) + len(content), cold)

    if body.get("stream") is False:
        return _json_reply(200, {**head, **_shape(use, "".join(content), "".join(thinking)), **final})
    lines = [{**head, **_shape(use, "", piece), "done": False} for piece in thinking]
    lines += [{**head, **_shape(use, piece), "done": False} for piece in content]
    interval = 1 / config.token_rate if config.token_rate else 0.0
    return _Stream(lines, {**head, **_shape(use, ""), **final}, interval)


async def _embed(instance: SimInstance, body: dict[str, Any]) -> _Reply:
    config = instance.config
    model = _model_for(config, body.get("model"), "embed")
    given = body.get("input") or []
    texts = [given] if isinstance(given, str) else given
    if not all(isinstance(text, str) for text in texts):
        raise _ApiError(400, "invalid input type")
    dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
    if dimensions <= 0:
        raise _ApiError(400, "dimensions must be a positive integer")
    dimensions = min(dimensions, DEFAULT_DIMENSIONS)  # more than the model has: Ollama ignores it
    cold = model.name not in config.loaded
    instance._mark_loaded(model.name, not _unloads(body.get("keep_alive")))
    payload = {"model": body["model"], "embeddings": [_embedding(text, dimensions) for text in texts]}
    prompt_tokens = sum(len(text.split()) for text in texts)
    return _json_reply(200, payload | _metrics(config, prompt_tokens, None, cold))


async def _embeddings(instance: SimInstance, body: dict[str, Any]) -> _Reply:
    model = _model_for(instance.config, body.get("model"), "embed")
    instance._mark_loaded(model.name, not _unloads(body.get("keep_alive")))
    prompt = body.get("prompt") or ""
    return _json_reply(200, {"embedding": _embedding(prompt, DEFAULT_DIMENSIONS) if prompt else []})


Handler = Callable[["SimInstance", Any], Any]
ROUTES: dict[str, dict[str, Handler]] = {
    "/": {"GET": _root, "HEAD": _root},
    "/api/version": {"GET": _version, "HEAD": _version},
    "/api/tags": {"GET": _tags, "HEAD": _tags},
    "/api/ps": {"GET": _ps},
    "/api/show": {"POST": _show},
    "/api/generate": {"POST": _generate},
    "/api/chat": {"POST": _chat},
    "/api/embed": {"POST": _embed},
    "/api/embeddings": {"POST": _embeddings},
}


def _with_fault(stream: _Stream, fault: str | None) -> _Stream:
    half = stream.lines[: len(stream.lines) // 2]
    if fault == "midstream":
        return _Stream(half, {"error": STREAM_BROKEN}, stream.interval)
    if fault == "truncated":
        return _Stream(half, None, stream.interval)
    return stream


# ---------------------------------------------------------------------------------------------
# Instances


class SimInstance:
    """One simulated server on its own loopback port. Public methods are safe from any thread."""

    def __init__(self, simulator: Simulator, config: SimConfig) -> None:
        self.config = config
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._simulator = simulator
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._in_flight = 0
        self._fault_changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __repr__(self) -> str:
        return f"SimInstance({self.config.name!r}, {self.url}, fault={self.config.fault!r})"

    def set_fault(self, fault: str | None) -> None:
        self.update(fault=fault)

    def update(self, **changes: Any) -> None:
        """Change SimConfig fields; returns once the change (listening, releasing hangs) is in effect."""
        self._simulator._call(self._apply(changes))

    def _mark_loaded(self, name: str, loaded: bool) -> None:
        """Record that a model was loaded (or unloaded by keep_alive 0), as /api/ps will report."""
        others = [other for other in self.config.loaded if other != name]
        self.config = dataclasses.replace(self.config, loaded=others + [name] if loaded else others)

    # -- loop-side ------------------------------------------------------------------------------

    async def _start(self, port: int) -> None:
        await self._listen(port)
        if self.config.fault == "refuse":
            self._stop_listening(keep=None)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve_connection, HOST, port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def _stop_listening(self, keep: asyncio.Task[Any] | None) -> None:
        """Close the listening socket and every connection but `keep` (the one asking, if any)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task, writer in list(self._connections.items()):
            if task is not keep:
                writer.transport.abort()
                task.cancel()

    async def _apply(self, changes: dict[str, Any], keep: asyncio.Task[Any] | None = None) -> None:
        previous = self.config.fault
        self.config = dataclasses.replace(self.config, **changes)
        if self.config.fault == previous:
            return
        self._fault_changed.set()
        self._fault_changed = asyncio.Event()
        if self.config.fault == "refuse":
            self._stop_listening(keep)
        elif previous == "refuse":
            await self._listen(self.port)

    async def _close(self) -> None:
        self._stop_listening(keep=None)
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._converse(reader, writer)
        except asyncio.CancelledError:
            pass  # stop() or "refuse": end quietly (3.10/3.11 log a cancelled connection task)
        finally:
            self._connections.pop(task, None)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._exchange(reader, writer):
                pass
        except _BadRequest as exc:
            log.info("%s: %s", self.config.name, exc)
            wire = _Wire(self, writer, drip=False)
            with contextlib.suppress(OSError):
                await wire.reply(_text_reply(400, "400 Bad Request"), head_only=False, keep_alive=False)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()
            # Awaiting also collects a lost connection's error, which asyncio would log otherwise.
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True when the connection stays open for another."""
        request = await _read_request(reader, writer)
        if request is None:
            return False
        body, body_error = _parse_body(request.raw_body)
        self.requests.append(RecordedRequest(request.method, request.path, request.headers, body))
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            control = request.path == CONTROL_PATH  # always answered promptly: it is how faults are cleared
            if self.config.fault == "hang" and not control:
                await self._fault_changed.wait()
                return False  # a hung request is never answered; its connection just closes
            wire = _Wire(self, writer, drip=self.config.fault == "drip" and not control)
            reply = await self._answer(request, body, body_error)
            keep_alive = request.keep_alive and not (isinstance(reply, _Reply) and reply.close)
            status = reply.status if isinstance(reply, _Reply) else 200
            log.info("%s %s %s -> %s", self.config.name, request.method, request.path, status)
            if isinstance(reply, _Stream):
                await wire.stream(reply, keep_alive)
            else:
                await wire.reply(reply, request.method == "HEAD", keep_alive)
            return keep_alive
        finally:
            self._in_flight -= 1

    async def _answer(self, request: _Request, body: Any, body_error: str | None) -> _Reply | _Stream:
        if request.path != CONTROL_PATH and self.config.latency:
            await asyncio.sleep(self.config.latency)
        config = self.config
        if not _allowed_host(request.headers.get("host", "")):
            return _Reply(403)
        if request.path == CONTROL_PATH:
            return await self._control(request, body, body_error)
        if config.fault == "garbage":
            return _Reply(200, NOT_OLLAMA_PAGE, "text/html; charset=utf-8")
        is_api = request.path.startswith("/api/")
        if is_api and config.api_key and request.headers.get("authorization") != f"Bearer {config.api_key}":
            return _error(401, "unauthorized")
        routes = ROUTES.get(request.path)
        if routes is None or (config.legacy and request.path in LEGACY_MISSING):
            return _text_reply(404, "404 page not found")
        if request.method not in routes:
            return _text_reply(405, "405 method not allowed")
        if is_api and config.fault == "http500":
            return _error(500, RUNNER_CRASHED)
        if config.fault == "busy503" and request.path in MODEL_PATHS:
            return _error(503, SERVER_BUSY)
        try:
            reply = await routes[request.method](self, self._checked_body(request, body, body_error))
        except _ApiError as exc:
            return _error(exc.status, str(exc))
        except Exception as exc:  # noqa: BLE001 - a simulator bug answers 500, never drops the connection
            log.exception("%s %s %s failed", config.name, request.method, request.path)
            return _error(500, f"simulator error: {type(exc).__name__}: {exc}")
        return _with_fault(reply, config.fault) if isinstance(reply, _Stream) else reply

    @staticmethod
    def _checked_body(request: _Request, body: Any, body_error: str | None) -> Any:
        if request.method != "POST":
            return None
        if body_error:
            raise _ApiError(400, body_error)
        if not isinstance(body, dict):
            raise _ApiError(
                400, f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.Request"
            )
        _check_fields(body)
        return body

    async def _control(self, request: _Request, body: Any, body_error: str | None) -> _Reply:
        """GET/POST /_sim/config: read or change this instance's SimConfig at run time."""
        if request.method == "POST":
            if body_error or not isinstance(body, dict):
                return _error(400, body_error or "expected a JSON object of SimConfig fields")
            try:
                await self._apply(body, keep=asyncio.current_task())
            except (TypeError, ValueError) as exc:
                return _error(400, str(exc))
        elif request.method != "GET":
            return _text_reply(405, "405 method not allowed")
        shown = dataclasses.asdict(self.config)
        if shown["api_key"]:
            shown["api_key"] = "***"
        return _json_reply(200, shown, close=self.config.fault == "refuse")


# ---------------------------------------------------------------------------------------------
# Simulator and foreground runner


class Simulator:
    """Runs all its instances on one asyncio loop in a background daemon thread (so it is usable
    from sync tests and from a CLI)."""

    def __init__(self) -> None:
        self.instances: list[SimInstance] = []
        self._loop = asyncio.new_event_loop()
        self._stopped = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ollamactl-simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def _call(self, coroutine: Any) -> Any:
        if self._stopped:
            coroutine.close()
            raise RuntimeError("the simulator is stopped")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def add(self, config: SimConfig | None = None, port: int = 0, **config_fields: Any) -> SimInstance:
        """Start one instance (listening before this returns) on `port` (0: any free port)."""
        config = dataclasses.replace(config or SimConfig(), **config_fields)
        instance = self._call(self._create(config, port))
        with self._lock:
            self.instances.append(instance)
        return instance

    async def _create(self, config: SimConfig, port: int) -> SimInstance:
        instance = SimInstance(self, config)  # built on the loop, which owns its Event
        await instance._start(port)
        return instance

    def stop(self) -> None:
        """Close every instance and connection (hung and dripping ones too) and end the loop."""
        with self._lock:
            if self._stopped:
                return
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
            self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    async def _shutdown(self) -> None:
        await asyncio.gather(*(instance._close() for instance in self.instances))

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_forever(
    count: int,
    base_port: int = 0,
    configs: list[SimConfig] | None = None,
    ready: Callable[[list[SimInstance]], None] | None = None,
) -> None:
    """Foreground runner for `ollamactl simulate`: start `count` instances on base_port, base_port+1,
    ... (0 = any free ports), call ready(instances) once listening, block until KeyboardInterrupt,
    then stop cleanly (no traceback). configs[i], when given, configures instance i; the rest get
    defaults named sim1, sim2, ..."""
    configs = configs or []
    with Simulator() as simulator:
        try:
            for index in range(count):
                config = configs[index] if index < len(configs) else SimConfig(name=f"sim{index + 1}")
                simulator.add(config, port=base_port + index if base_port else 0)
            if ready is not None:
                ready(simulator.instances)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
