"""Deterministic content: text from model and prompt, vectors from text, plausible metrics."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ollamactl.sim.config import (
    COLD_LOAD_NS,
    NOMINAL_TOKEN_RATE,
    PROMPT_NS_PER_TOKEN,
    WARM_LOAD_NS,
    WORDS,
    SimConfig,
    SimModel,
    bytes_per_param,
    seed_int,
)
from ollamactl.sim.validation import ApiError
from ollamactl.sim.wire import timestamp


def answer_words(seed: str, count: int) -> list[str]:
    words: list[str] = []
    block = 0
    while len(words) < count:
        digest = hashlib.sha256(f"{seed}\0{block}".encode()).digest()
        words.extend(WORDS[byte % len(WORDS)] for byte in digest)
        block += 1
    return words[:count]


def text_fragments(words: list[str]) -> list[str]:
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


def json_fragments(words: list[str], schema: Any) -> list[str]:
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
    return samples.get(kind or "", {} if kind == "object" else text)


def token_id(word: str) -> int:
    return seed_int(word) % 128_000


def embedding_for(text: str, dimensions: int) -> list[float]:
    """A unit vector seeded by the text alone (so every instance and endpoint agrees)."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in values))
    return [value / norm for value in values]


def run_metrics(config: SimConfig, prompt_tokens: int, eval_count: int | None, cold: bool) -> dict[str, int]:
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


def model_details(model: SimModel) -> dict[str, Any]:
    base = model.name.rsplit("/", 1)[-1].split(":", 1)[0]
    family = re.match(r"[a-z]*", base.lower()).group() or "llama"  # type: ignore[union-attr]  # [a-z]* always matches
    params = (model.size or 0) / bytes_per_param(model.embedding)
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.0f}M",
        "quantization_level": "F16" if model.embedding else "Q4_K_M",
    }


def modified_at(model: SimModel) -> str:
    return timestamp(datetime(2025, 6, 1, 12, tzinfo=timezone.utc) + timedelta(minutes=seed_int(model.name) % 130_000))


def model_listing(model: SimModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": modified_at(model),
        "size": model.size,
        "digest": model.digest,
        "details": model_details(model),
    }


def answer_shape(use: str, content: str, thinking: str = "") -> dict[str, Any]:
    """The text-carrying part of a generate ("response") or chat ("message") object."""
    if use == "generate":
        return {"response": content, "thinking": thinking} if thinking else {"response": content}
    message = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    return {"message": message}


def read_prompt(body: dict[str, Any], use: str) -> tuple[str | None, str]:
    """(the text the answer derives from, or None for a load-only request; all prompt text)."""
    if use == "generate":
        prompt = body.get("prompt") or ""
        return (prompt or None), f"{body.get('system') or ''} {prompt}"
    messages = body.get("messages") or []
    if not all(isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages):
        raise ApiError(400, "json: cannot unmarshal messages: each message needs a role and string content")
    if not messages:
        return None, ""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return (users[-1] if users else ""), " ".join(m.get("content", "") for m in messages)

