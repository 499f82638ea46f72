"""JSON from servers, after issue 23 (points 5 and 7): an answer nested 1,000 levels deep (2 KB) gave a
RecursionError traceback in `ps`, `ps --json`, `run` (even after output started), `run --json`,
`run --chat` and `sync --dry-run`; a server's NaN/Infinity was copied into `ps --json` and `embed`
output with exit 0. Now both are refused as "not JSON" in words naming the instance, and nothing
ollamactl prints as JSON fails a strict parser."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run
from hostile_server import ollama_like, send

from ollamactl.core import server_json
from ollamactl.core.fleet import Fleet

DEEP = b"[" * 1000 + b"]" * 1000  # 2 KB


def body(data: bytes, status: int = 200):
    return lambda handler: send(handler, status, data)


def strict(text: str):
    """Parse `text` as a strict parser (JavaScript's JSON.parse) would: no NaN or Infinity."""
    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def no_traceback(result, code: int = 1) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result.stderr


def deep(hostile, path: str, data: bytes, status: int = 200):
    """A healthy-looking server `deep` whose answer to `path` is `data`."""
    server = hostile({**ollama_like(names=("llama3.2:latest", "nomic-embed-text:latest")), path: body(data, status)})
    Fleet().add(server.url, id="deep")
    return server


def test_ps_names_the_instance_and_the_depth(hostile):
    deep(hostile, "/api/ps", b'{"models":[{"name":"llama3.2:latest","size":' + DEEP + b"}]}")
    for args in (("ps",), ("ps", "--json")):
        result = run(*args)
        no_traceback(result)
        shown = result.stdout + result.stderr
        assert "deep" in shown and f"nested more than {server_json.MAX_DEPTH} levels deep" in shown, shown


def test_run_after_output_started_ends_with_the_error_line(hostile):
    deep(hostile, "/api/generate", b'{"response":"hello ","done":false}\n{"response":' + DEEP + b',"done":false}\n')
    result = run("run", "llama3.2", "hi")
    stderr = no_traceback(result)
    assert result.stdout.startswith("hello ")
    assert "deep" in stderr and "nested more than 64 levels deep" in stderr, stderr


def test_run_json_and_chat_fail_in_words(hostile):
    server = deep(hostile, "/api/generate", b'{"response":' + DEEP + b',"done":true}\n')
    server.routes["/api/chat"] = body(b'{"message":' + DEEP + b',"done":true}\n')
    for args in (("run", "llama3.2", "hi", "--json"), ("run", "llama3.2", "hi", "--chat")):
        stderr = no_traceback(run(*args))
        assert "deep" in stderr and "nested more than 64 levels deep" in stderr, (args, stderr)


def test_sync_dry_run_does_not_crash_on_a_deep_show_answer(hostile):
    deep(hostile, "/api/show", b'{"capabilities":' + DEEP + b"}")
    result = run("sync", "--dry-run")
    assert "Traceback" not in result.stderr and not isinstance(result.exception, RecursionError)
    assert result.exit_code == 0, result.stderr


def test_a_deep_error_body_is_not_a_traceback(hostile):
    deep(hostile, "/api/generate", b'{"error":' + DEEP + b"}", status=500)
    stderr = no_traceback(run("run", "llama3.2", "hi"))
    assert "deep" in stderr and "HTTP 500" in stderr, stderr


def test_non_finite_numbers_never_reach_json_output(hostile):
    ps = b'{"models":[{"name":"llama3.2:latest","size":NaN,"size_vram":Infinity,"context_length":1e400}]}'
    deep(hostile, "/api/ps", ps)
    listing = run("ps", "--json")
    assert listing.exit_code == 1, listing.stdout  # before: exit 0 with NaN and Infinity in the output
    rows = strict(listing.stdout)
    assert rows[0]["models"] is None and "NaN, which is not a JSON number" in rows[0]["error"]


def test_non_finite_numbers_in_answers_are_errors(hostile):
    server = deep(hostile, "/api/embed", b'{"embeddings":[[0.5,NaN,-Infinity]]}')
    server.routes["/api/generate"] = body(b'{"response":"x","done":true,"eval_duration":Infinity}\n')
    embedded = run("embed", "nomic-embed-text", "text")
    assert embedded.exit_code == 1 and embedded.stdout == "", embedded.stdout  # before: NaN in the vectors
    assert "deep" in embedded.stderr and "NaN, which is not a JSON number" in embedded.stderr, embedded.stderr
    generated = run("run", "llama3.2", "hi", "--json")
    assert generated.exit_code == 1 and "Infinity" not in generated.stdout
    assert "Infinity, which is not a JSON number" in generated.stderr, generated.stderr


def test_the_depth_check_counts_levels_not_brackets():
    assert server_json.loads(b"[" * 64 + b"]" * 64)
    assert server_json.loads(b'["' + b"[" * 500 + b'"]') == ["[" * 500]  # brackets in a string are text
    assert server_json.loads(b'{"e":[' + b"[1.5,2.5]," * 500 + b"[0]]}")["e"][-1] == [0]
    for deep in (b"[" * 65 + b"]" * 65, b'{"a":' * 65 + b"1" + b"}" * 65, b"[" * 1000, b'[{"x":\\"' + DEEP):
        with pytest.raises(ValueError):
            server_json.loads(deep)
    for bad in (b"[NaN]", b"[Infinity]", b"[-Infinity]", b"[1e400]", b"[-1E+0400]", b"[" + b"9" * 400 + b".0]"):
        with pytest.raises(ValueError):
            server_json.loads(bad)
    assert server_json.loads(b"[1e308, 1e-400, 123]") == [1e308, 0.0, 123]


def test_every_json_ollamactl_prints_is_strict():
    """Each json.dumps and JSONEncoder of the CLI and the exports refuses NaN and Infinity: a value
    that slipped through would fail the command instead of reaching a strict parser."""
    import ast
    from pathlib import Path

    import ollamactl

    root = Path(ollamactl.__file__).parent
    calls = []
    for path in [*sorted((root / "cli").rglob("*.py")), *sorted((root / "core" / "export").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("dumps", "JSONEncoder") and getattr(node.func.value, "id", "") == "json":
                strict_call = any(k.arg == "allow_nan" and getattr(k.value, "value", True) is False
                                  for k in node.keywords)
                calls.append((f"{path.name}:{node.lineno}", strict_call))
    assert len(calls) >= 8 and all(ok for _, ok in calls), calls
