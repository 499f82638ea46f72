"""Request validation as a Go Ollama server does it: body parsing, field types, options, models."""

from __future__ import annotations

import json
import logging
from typing import Any

from ollamactl.model_names import normalise_model
from ollamactl.sim.config import (
    _SURROGATE,
    _SURROGATE_ESCAPE,
    FIELD_TYPES,
    FLOAT_OPTIONS,
    INT_OPTIONS,
    ZERO_DURATION,
    SimConfig,
    SimModel,
)

log = logging.getLogger("ollamactl.sim")


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
    wanted = normalise_model(name)
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

