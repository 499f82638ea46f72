"""`run` (and `embed`) when things go wrong: a model nobody has, the default instance, --strict,
failure summaries, typed -o and --keep-alive, an empty --key, and what a terminal shows."""

import os
import pty
import select
import subprocess
import sys
import time

import pytest
from cli_helpers import one_error_line, run

from ollamactl.core.fleet import Fleet
from ollamactl.core.health import probe as health
from ollamactl.sim import SimModel


def register(*instances):
    ids = [Fleet().add(i.url, name=f"sim{n}").id for n, i in enumerate(instances, 1)]
    health.save(Fleet().store, health.check(Fleet().registry().instances, timeout=5.0))
    return ids


def model_requests(*instances):
    return [r for i in instances for r in i.requests if r.path.startswith(("/api/generate", "/api/chat", "/api/embed"))]


# ---------------------------------------------------------------------------------------------
# A model no instance has


def test_a_model_no_instance_has_sends_nothing_and_names_what_each_has(sim):
    a, b = sim.add(), sim.add(models=["qwen2.5:7b"])
    ids = register(a, b)
    result = run("run", "mistral:7b", "hi")
    assert result.exit_code == 3 and result.stdout == ""
    assert model_requests(a, b) == []
    lines = result.stderr.splitlines()
    assert lines[0] == ("ollamactl: error: model mistral:7b is on no healthy instance; pull it with"
                        " `ollamactl pull mistral:7b`, or use a model listed below")
    assert lines[1:] == [f"  {ids[0]} ({a.url}) has llama3.2:latest, nomic-embed-text:latest, qwen2.5:7b",
                         f"  {ids[1]} ({b.url}) has qwen2.5:7b"]


def test_without_a_pull_command_no_pull_is_suggested(sim, monkeypatch):
    a = sim.add()
    register(a)
    from ollamactl.cli import commands as root

    without_pull = {name: module for name, module in root.COMMANDS.items() if name != "pull"}
    assert len(without_pull) == len(root.COMMANDS) - 1
    monkeypatch.setattr(root, "COMMANDS", without_pull)
    result = run("run", "mistral:7b", "hi")
    assert result.exit_code == 3
    assert "ollamactl pull" not in result.stderr
    assert "use a model listed below, or pull it onto an instance" in result.stderr.splitlines()[0]


def test_a_model_pulled_since_the_last_check_is_found_after_one_refresh(sim):
    a = sim.add(models=["llama3.2"])
    register(a)  # the cache (fresh) says: no qwen2.5:7b
    a.update(models=[SimModel("llama3.2"), SimModel("qwen2.5:7b")])
    result = run("run", "qwen2.5:7b", "hi")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()


def test_embed_with_a_model_no_instance_has_exits_3(sim):
    a = sim.add()
    register(a)
    result = run("embed", "mxbai-embed-large", "text")
    assert result.exit_code == 3 and result.stdout == "" and model_requests(a) == []
    assert "model mxbai-embed-large:latest is on no healthy instance" in result.stderr


# ---------------------------------------------------------------------------------------------
# The default instance and --strict


def test_pick_with_nothing_registered_warns_once(monkeypatch):
    result = subprocess.run([sys.executable, "-m", "ollamactl", "pick", "-n", "3"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == "http://127.0.0.1:11434\n" * 3
    assert result.stderr.count("warning: no instances registered; using the default instance"
                               " http://127.0.0.1:11434") == 1


def test_run_with_nothing_registered_and_nothing_running_asks_whether_ollama_runs(sim, monkeypatch):
    down = sim.add(fault="refuse")
    monkeypatch.setenv("OLLAMA_HOST", down.url)
    result = run("run", "llama3.2", "hi")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == (f"ollamactl: warning: no instances registered; using the default instance {down.url}"
                        " (OLLAMA_HOST, else http://127.0.0.1:11434); add one with `ollamactl add URL`")
    assert lines[1] == ("ollamactl: error: the attempt failed; is Ollama running? (`ollama serve`, or try"
                        " `ollamactl simulate`)")
    assert lines[2] == f"  default ({down.url}): connection refused"


def test_strict_run_and_embed_do_not_fall_back_to_the_default_instance(sim, monkeypatch):
    registered, default = sim.add(), sim.add()
    Fleet().add(registered.url)
    registered.set_fault("refuse")
    monkeypatch.setenv("OLLAMA_HOST", default.url)
    loose = run("run", "llama3.2", "hi")
    assert loose.exit_code == 0 and "using the default instance" in loose.stderr
    served = len(model_requests(default))
    strict = run("run", "llama3.2", "hi", "--strict")
    assert strict.exit_code == 3 and "no eligible instance" in strict.stderr
    assert run("embed", "nomic-embed-text", "x", "--strict").exit_code == 3
    assert len(model_requests(default)) == served  # nothing more was sent to it


def test_a_failure_summary_has_one_line_per_attempt(sim):
    a, b, c = sim.add(fault="busy503"), sim.add(fault="busy503"), sim.add(fault="busy503")
    ids = register(a, b, c)  # healthy: a busy server still answers its probes
    result = run("run", "llama3.2", "hi")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "ollamactl: error: all 3 attempts failed"
    assert sorted(line.split(" (")[0].strip() for line in lines[1:]) == sorted(ids)
    assert all(line.startswith("  ") and "HTTP 503: server busy" in line for line in lines[1:])


# ---------------------------------------------------------------------------------------------
# Typed -o and --keep-alive; an empty --key


def test_a_known_option_of_the_wrong_type_is_exit_2_and_nothing_is_sent(sim):
    a = sim.add()
    register(a)
    result = run("run", "llama3.2", "hi", "-o", "temperature=abc")
    assert result.exit_code == 2 and model_requests(a) == []
    assert one_error_line(result) == ("ollamactl: error: -o temperature=abc: temperature takes a number;"
                                      " e.g. -o temperature=0.2")
    assert run("run", "llama3.2", "hi", "-o", "num_ctx=8192.5").exit_code == 2
    assert run("run", "llama3.2", "hi", "-o", "use_mmap=3").exit_code == 2
    assert model_requests(a) == []


def test_an_unknown_option_warns_with_a_guess_and_is_sent(sim):
    a = sim.add()
    register(a)
    result = run("run", "llama3.2", "hi", "-o", "temprature=0.2", "-o", "stop=END", "-o", "stop=###",
                 "-o", "top_k=40")
    assert result.exit_code == 0, result.stderr
    assert "did you mean 'temperature'?" in result.stderr
    assert model_requests(a)[-1].body["options"] == {"temprature": 0.2, "stop": ["END", "###"], "top_k": 40}


@pytest.mark.parametrize("given,sent", [("5m", "5m"), ("1h30m", "1h30m"), ("-1", -1), ("0", 0), ("3600", 3600),
                                        ("1.5h", "1.5h"), ("300ms", "300ms"), ("+5m", "+5m"), (".5h", ".5h"),
                                        ("2.5", 2.5), (" 10m ", "10m")])
def test_keep_alive_takes_ollamas_duration_forms(sim, given, sent):
    a = sim.add()
    register(a)
    result = run("run", "llama3.2", "hi", "--keep-alive", given)
    assert result.exit_code == 0, result.stderr
    assert model_requests(a)[-1].body["keep_alive"] == sent


@pytest.mark.parametrize("given", ["5x", "1d", "m5", "5 m", "forever", "", "nan", "inf", "1e999"])
def test_keep_alive_rejects_other_forms(sim, given):
    a = sim.add()
    register(a)
    result = run("run", "llama3.2", "hi", "--keep-alive", given)
    assert result.exit_code == 2 and model_requests(a) == []
    assert "is not a duration" in one_error_line(result)


def test_an_empty_key_is_exit_2_for_pick_and_run(sim):
    a = sim.add()
    register(a)
    picked = subprocess.run([sys.executable, "-m", "ollamactl", "pick", "--key", ""], capture_output=True, text=True,
                            timeout=60)
    assert picked.returncode == 2 and picked.stdout == "" and "empty key" in picked.stderr
    result = run("run", "llama3.2", "hi", "--key", " ")
    assert result.exit_code == 2 and "empty key" in one_error_line(result) and model_requests(a) == []


# ---------------------------------------------------------------------------------------------
# On a terminal


def _on_a_terminal(args, typed=b"", wait_for=b"", timeout=30):
    """Run ollamactl with stdin and stderr on a pseudo-terminal and stdout on a pipe: (stdout, terminal)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", *args], stdin=terminal, stderr=terminal,
                               stdout=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"}, close_fds=True)
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + timeout
    sent = not typed
    while process.poll() is None and time.monotonic() < deadline:
        if select.select([controller], [], [], 0.05)[0]:
            try:
                seen += os.read(controller, 4096)
            except OSError:
                break
        if not sent and wait_for in seen:
            os.write(controller, typed)
            sent = True
    out = process.communicate(timeout=timeout)[0]
    while select.select([controller], [], [], 0.1)[0]:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return process.returncode, out.decode(), seen.decode("utf-8", "replace")


def test_on_a_terminal_run_says_it_reads_the_prompt_and_spins_while_it_waits(sim):
    slow = sim.add(latency=1.5)
    (instance_id,) = register(slow)
    code, out, terminal = _on_a_terminal(["run", "llama3.2"], typed=b"why is the sky blue?\n\x04",
                                         wait_for=b"Ctrl-D")
    assert code == 0, terminal
    assert "ollamactl: reading the prompt from the terminal; end it with Ctrl-D" in terminal
    assert f"attempt 1/1: {instance_id} ({slow.url}), waiting 1 s" in terminal  # the spinner, after a second
    assert terminal.rstrip().endswith("\x1b[K")  # and its line is cleared once the answer starts
    assert len(out.split()) == 12
    assert model_requests(slow)[-1].body["prompt"] == "why is the sky blue?"


def test_on_a_pipe_run_shows_no_spinner(sim):
    slow = sim.add(latency=1.2)
    register(slow)
    result = subprocess.run([sys.executable, "-m", "ollamactl", "run", "llama3.2", "hi"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
