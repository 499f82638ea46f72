"""The simulated OpenAI-compatible API under /v1, as Ollama serves it for SDK users.

Like Ollama's own middleware, each route translates the OpenAI request into the native one, lets
the native endpoint answer, and translates the answer back: `/v1/models`, `/v1/chat/completions`
and `/v1/completions` (one JSON object, or with `"stream": true` server-sent events ending in
`data: [DONE]`), and `/v1/embeddings` (float lists, or base64 little-endian float32 when
`encoding_format` is `base64`, which the OpenAI Python SDK asks for by default). Errors have
OpenAI's shape `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

from ollamactl.sim.config import DEFAULT_DIMENSIONS
from ollamactl.sim.content import embedding_for, modified_at
from ollamactl.sim.endpoints import Handler, completion
from ollamactl.sim.state import InstanceState
from ollamactl.sim.validation import ApiError, model_for, unloads
from ollamactl.sim.wire import Reply, Stream, json_reply

# OpenAI parameter -> Ollama option (what Ollama's openai middleware maps).
_OPTION_NAMES = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
                 "max_tokens": "num_predict", "max_completion_tokens": "num_predict",
                 "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty"}


def _openai_error(status: int, message: str) -> Reply:
    kind = "invalid_request_error" if status < 500 else "api_error"
    if status == 404:
        kind = "not_found_error"
    return json_reply(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})


def _created(model_time: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(model_time.replace("Z", "+00:00")).timestamp())


async def _models(state: InstanceState, body: Any) -> Reply:
    data = [{"id": model.name, "object": "model", "created": _created(modified_at(model)), "owned_by": "library"}
            for model in state.config.models]
    return json_reply(200, {"object": "list", "data": data})


def _native(body: dict[str, Any], use: str) -> dict[str, Any]:
    """The native /api/chat or /api/generate body for an OpenAI request."""
    native: dict[str, Any] = {"model": body.get("model"), "stream": bool(body.get("stream"))}
    if use == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "invalid message format: messages must be a non-empty list")
        native["messages"] = [_message(message) for message in messages]
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise ApiError(400, "invalid prompt: a string is expected")
        native["prompt"] = prompt
    options = {option: body[name] for name, option in _OPTION_NAMES.items() if body.get(name) is not None}
    if options:
        native["options"] = options
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        native["format"] = "json"
    return native


def _message(message: Any) -> dict[str, str]:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise ApiError(400, "invalid message format: each message needs a role")
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise ApiError(400, "invalid message content type")
    return {"role": message["role"], "content": content}


def _finish(final: dict[str, Any]) -> str:
    return "length" if final.get("done_reason") == "length" else "stop"


def _usage(final: dict[str, Any]) -> dict[str, int]:
    prompt, completion = final.get("prompt_eval_count", 0), final.get("eval_count", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _text(obj: dict[str, Any], use: str) -> str:
    if use == "chat":
        return (obj.get("message") or {}).get("content") or ""
    return obj.get("response") or ""


def _answer(state: InstanceState, body: dict[str, Any], use: str) -> Reply | Stream:
    """One chat or text completion: the native answer in OpenAI's shape (JSON, or SSE chunks)."""
    try:
        native = _native(body, use)
        reply = completion(state, native, use)
    except ApiError as exc:
        return _openai_error(exc.status, str(exc))
    kind = "chat.completion" if use == "chat" else "text_completion"
    head = {"id": f"{'chatcmpl' if use == 'chat' else 'cmpl'}-{time.monotonic_ns() % 1000:03d}",
            "object": kind, "created": int(time.time()), "model": body["model"], "system_fingerprint": "fp_ollama"}

    def choice(text: str, finish: str | None, streamed: bool) -> dict[str, Any]:
        if use != "chat":
            return {"index": 0, "text": text, "finish_reason": finish}
        if streamed:
            return {"index": 0, "delta": {"role": "assistant", "content": text} if text else {},
                    "finish_reason": finish}
        return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}

    if isinstance(reply, Reply):
        final = json.loads(reply.body)
        return json_reply(200, {**head, "choices": [choice(_text(final, use), _finish(final), False)],
                                 "usage": _usage(final)})
    if use == "chat":
        head["object"] = "chat.completion.chunk"
    lines = [{**head, "choices": [choice(_text(line, use), None, True)]} for line in reply.lines]
    final = reply.final or {}
    last = {**head, "choices": [choice("", _finish(final), True)]}
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        lines.append(last)
        last = {**head, "choices": [], "usage": _usage(final)}
    return Stream(lines, last, reply.interval, sse=True)


async def _chat(state: InstanceState, body: dict[str, Any]) -> Reply | Stream:
    return _answer(state, body, "chat")


async def _completions(state: InstanceState, body: dict[str, Any]) -> Reply | Stream:
    return _answer(state, body, "generate")


async def _embeddings(state: InstanceState, body: dict[str, Any]) -> Reply:
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        return _openai_error(400, "invalid input: a string or a non-empty list of strings is expected")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return _openai_error(400, f"invalid encoding_format {encoding!r}: use float or base64")
    try:
        model = model_for(state.config, body.get("model"), "embed")
    except ApiError as exc:
        return _openai_error(exc.status, str(exc))
    dimensions = min(body.get("dimensions") or DEFAULT_DIMENSIONS, DEFAULT_DIMENSIONS)
    state.mark_loaded(model.name, not unloads(body.get("keep_alive")))
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding_for(text, dimensions)
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "embedding": vector, "index": index})
    tokens = sum(len(text.split()) for text in texts)
    return json_reply(200, {"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


OPENAI_ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/models": {"GET": _models},
    "/v1/chat/completions": {"POST": _chat},
    "/v1/completions": {"POST": _completions},
    "/v1/embeddings": {"POST": _embeddings},
}
