"""The smaller items of issue 11: Ctrl-C during start-up, run --verbose timing, embed's first-byte
timeout, and where a truncated registry is broken."""

from __future__ import annotations

import builtins
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import one_error_line, run
from hostile_server import ollama_like

from ollamactl.cli import launcher
from ollamactl.core.fleet import Fleet


def test_ctrl_c_while_the_app_is_imported_is_exit_130_in_one_line(monkeypatch, capsys):
    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "typer.main":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as exited:
        launcher.main(["update"])  # a command Typer answers
    assert exited.value.code == 130
    assert capsys.readouterr().err == "ollamactl: error: interrupted\n"


def test_ctrl_c_during_the_imports_of_a_real_start_is_exit_130_in_one_line():
    """SIGINT sent as soon as the launcher is imported lands in the imports of Typer and the commands
    (~0.1-0.2 s): one line and exit 130, no traceback (before: a KeyboardInterrupt traceback, exit -2).
    An interrupt before any ollamactl code runs (Python's own start-up) is Python's to handle."""
    process = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "ollamactl", "list"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.rstrip().endswith("ollamactl.cli.launcher"):
            process.send_signal(signal.SIGINT)
            break
    rest = process.communicate(timeout=30)[1]
    messages = [line for line in lines + rest.splitlines(keepends=True) if not line.startswith("import time:")]
    assert process.returncode == 130, messages
    assert messages == ["ollamactl: error: interrupted\n"]


def test_run_verbose_reports_when_the_first_token_came(hostile):
    def generate(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-ndjson")
        handler.end_headers()
        handler.wfile.write(b'{"response":"first","done":false}\n')
        handler.wfile.flush()
        time.sleep(1.5)  # the rest of the answer comes much later
        handler.wfile.write(b'{"response":"","done":true,"eval_count":1,"eval_duration":1000}\n')

    server = hostile({**ollama_like(), "/api/generate": generate})
    Fleet().add(server.url, id="one")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ollamactl", "run", "llama3.2", "hi", "--verbose"],
                            capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    whole = time.monotonic() - started
    assert result.returncode == 0 and result.stdout == "first\n", result.stderr
    found = re.search(r"first token ([\d.]+) s after the request \(([\d.]+) s after the command started\)",
                      result.stderr)
    assert found, result.stderr
    after_request, after_start = map(float, found.groups())
    # It reports the moment the first token was shown, not the end of the stream (before: the end).
    assert after_request <= after_start <= whole - 1.0


def test_embed_has_a_first_byte_timeout(sim):
    hung = sim.add(fault="hang")
    Fleet().add(hung.url, id="hung")
    result = run("embed", "nomic-embed-text", "x", "--instance", "hung", "--first-byte-timeout", "0.5")
    assert result.exit_code == 1
    error, attempt = result.stderr.splitlines()  # the error, then one line per failed attempt
    assert error.startswith("ollamactl: error: batch 1 (texts 1-1) failed on every instance")
    assert attempt == f"  hung ({hung.url}): no answer within the first-byte timeout (0.5 s)"


def test_a_truncated_registry_error_names_line_and_column(isolated_env):
    config = isolated_env["config"]
    config.parent.mkdir(parents=True)
    config.write_text('version = 1\n\n[[instances]]\nid = "gpu1-11434"\nurl = "http://gpu1:114')
    line = one_error_line(run("list"))
    assert "line 5, column 23" in line and "cut short" in line
    assert run("add", "gpu2").exit_code == 1
    assert config.read_text().endswith(':114')  # never overwritten


def test_a_late_bad_line_on_a_pipe_is_exit_1_and_says_output_was_written(sim):
    """`embed` streams piped stdin: a bad line found after vectors were written cannot be exit 2
    (nothing written); it is exit 1 and says so. Before: 99,328 lines written, then exit 2."""
    instance = sim.add()
    Fleet().add(instance.url, id="one")
    lines = "".join(f"text {n}\n" for n in range(3000)) + "\nz\n"
    result = subprocess.run([sys.executable, "-m", "ollamactl", "embed", "nomic-embed-text", "--ndjson"],
                            input=lines, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    written = result.stdout.splitlines()  # input is read at most a few batches ahead of the output
    assert written and result.returncode == 1 and "line 3001 of stdin is empty" in result.stderr
    assert f"found after {len(written)} vectors had been written" in result.stderr
    assert [json.loads(line)["index"] for line in written] == list(range(len(written)))
