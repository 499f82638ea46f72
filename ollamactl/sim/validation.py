"""Request validation as a Go Ollama server does it: body parsing, field types, options, models."""

from __future__ import annotations

import json
import re
from typing import Any

from ollamactl.model_names import normalise_model
from ollamactl.sim.config import (
    FIELD_TYPES,
    FLOAT_OPTIONS,
    INT_OPTIONS,
    ZERO_DURATION,
    SimConfig,
    SimModel,
)

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # left unpaired by json.loads


class ApiError(Exception):
    """A request Ollama refuses: answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_body(raw: bytes) -> tuple[Any, str | None]:
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


def request_body(method: str, body: Any, body_error: str | None) -> Any:
    """The JSON object a POST or DELETE carries, its top-level fields type-checked (None for other
    methods); an ApiError worded as Go's decoder words it when it is missing or not an object."""
    if method not in ("POST", "DELETE"):
        return None
    if body_error:
        raise ApiError(400, body_error)
    if not isinstance(body, dict):
        raise ApiError(400, f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.Request")
    _check_fields(body)
    return body


def _json_kind(value: Any) -> str:
    kinds = {bool: "bool", str: "string", list: "array", dict: "object", type(None): "null"}
    return kinds.get(type(value), "number")


def _check_fields(body: dict[str, Any]) -> None:
    for key, types in FIELD_TYPES.items():
        value = body.get(key)
        wrong_bool = isinstance(value, bool) and bool not in types
        if value is not None and (wrong_bool or not isinstance(value, types)):
            raise ApiError(400, f"json: cannot unmarshal {_json_kind(value)} into Go struct field .{key}")


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    options = options or {}
    for key, value in options.items():
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in FLOAT_OPTIONS and not is_number:
            raise ApiError(400, f"option {json.dumps(key)} must be of type float32")
        if key in INT_OPTIONS and not (is_number and float(value).is_integer()):
            raise ApiError(400, f"option {json.dumps(key)} must be of type integer")
        if key == "stop" and not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
            raise ApiError(400, 'option "stop" must be of type array of strings')
    return options


def check_format(value: Any) -> Any:
    if value in (None, "") or value == "json" or isinstance(value, dict):
        return value or None
    raise ApiError(400, 'invalid format: expected "json" or a valid JSON schema')


def find_model(config: SimConfig, name: str) -> SimModel | None:
    wanted = normalise_model(name)
    return next((model for model in config.models if model.name == wanted), None)


def model_for(config: SimConfig, name: str | None, use: str) -> SimModel:
    """The requested model, checked for `use`: "generate", "chat", "embed" or "show"."""
    if not name:
        raise ApiError(400, "model is required")
    model = find_model(config, name)
    if model is None:
        if use == "embed":
            raise ApiError(404, f"model {json.dumps(name)} not found, try pulling it first")
        raise ApiError(404, f"model '{name}' not found")
    if use == "embed" and not model.embedding:
        raise ApiError(400, f"{json.dumps(name)} does not support embeddings")
    if use in ("generate", "chat") and model.embedding:
        raise ApiError(400, f"{json.dumps(name)} does not support {use}")
    return model


def unloads(keep_alive: Any) -> bool:
    if isinstance(keep_alive, bool):
        return False
    if isinstance(keep_alive, (int, float)):
        return keep_alive == 0
    return isinstance(keep_alive, str) and ZERO_DURATION.fullmatch(keep_alive) is not None

