"""The README and the docs its tour continues in run as written: every shell command of their
sections (see tests/doc_shell.py for which documents and sections, and for the comments that tell
this test what to expect) runs in order, in one bash, in a fresh HOME, against the simulated fleet
the README's tour itself starts on ports 11500-11502.

Network-free (loopback only) and bounded (one deadline for the whole run; the line that was
running is named when it passes). A new section's ```sh block is covered without touching this file.

The default suite runs the `seq N | xargs -P 8 ...` recipes with at most SCALED_ITEMS items (still
more at once than the fleet's max_inflight takes, so some wait); the slow set runs them as written
(`seq 100` of `ollamactl exec` alone is 100 start-ups, a minute of this test on two cores).
"""

import dataclasses
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_shell import doc_commands

from ollamactl.core.fleet import Fleet

DEADLINE_S = 240
TOUR_PORTS = (11500, 11501, 11502)
SCALED_ITEMS = 16
PORT_WAIT_S = 150


def scaled(command):
    """The command with a leading `seq N |` cut to at most SCALED_ITEMS items."""
    text = re.sub(r"^seq (\d+) \|", lambda m: f"seq {min(int(m.group(1)), SCALED_ITEMS)} |", command.text)
    return dataclasses.replace(command, text=text)


def port_taken(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def script_for(commands, out):
    """One bash script: each command's output, errors, exit code and start/end times land in
    `out`/N.*; background commands are stopped as by Ctrl-C (SIGINT) at the end, or when the same
    program starts again, and their exit code is recorded the same way."""
    # -m: background jobs keep SIGINT (bash ignores it in them otherwise), so "Ctrl-C" can stop them
    lines = ["set +e -m", f"OUT={shlex.quote(str(out))}", "BACKGROUND=()",
             'stop() {  # number:pid:program',
             '  local number=${1%%:*} rest=${1#*:}; local pid=${rest%%:*}',
             '  [ -e "$OUT/$number.rc" ] && return',
             '  kill -INT "$pid" 2>/dev/null; wait "$pid"; echo $? >"$OUT/$number.rc"',
             "}"]
    for number, command in enumerate(commands):
        files = f'>"$OUT/{number}.out" 2>"$OUT/{number}.err"'
        lines.append(f'echo {number} >"$OUT/current"')
        if command.skip:
            continue
        if command.background:
            program = " ".join(command.text.split()[:2])  # a second `ollamactl simulate` replaces the first
            lines += [f'for entry in "${{BACKGROUND[@]}}"; do [ "${{entry#*:*:}}" = {shlex.quote(program)} ]'
                      ' && stop "$entry"; done',
                      f"{command.text} {files} &", f'BACKGROUND+=("{number}:$!:{program}")',
                      # ready once it says so (simulate), or after a moment
                      f'for _ in $(seq 100); do grep -q "press Ctrl-C" "$OUT/{number}.err" 2>/dev/null && break;'
                      " sleep 0.1; done"]
        else:
            lines += ["started=$EPOCHREALTIME", f"{{ {command.text}", f"}} {files}", f'echo $? >"$OUT/{number}.rc"',
                      f'echo "$started $EPOCHREALTIME" >"$OUT/{number}.time"']
    lines += ['for entry in "${BACKGROUND[@]}"; do stop "$entry"; done']
    return "\n".join(lines) + "\n"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A fresh user: HOME with nothing in it, `ollamactl` and `python` on PATH (this interpreter,
    this working tree), no ollamactl location variables."""
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("ollamactl", f'exec "{sys.executable}" -m ollamactl "$@"'),
                       ("python", f'exec "{sys.executable}" "$@"'), ("python3", f'exec "{sys.executable}" "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OLLAMACTL_", "XDG_")) and key not in ("OLLAMA_HOST", "ZDOTDIR")}
    env.update(HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", USER=env.get("USER") or "tourist",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent), PYTHONUNBUFFERED="1")
    return home, work, env


@pytest.mark.parametrize("counts", ["scaled", pytest.param("as-written", marks=pytest.mark.slow)])
def test_every_doc_command_runs_as_written(scratch, tmp_path, counts):
    home, work, env = scratch
    deadline = time.monotonic() + PORT_WAIT_S  # another run of this suite on the machine may hold them
    while (taken := [port for port in TOUR_PORTS if port_taken(port)]) and time.monotonic() < deadline:
        time.sleep(1)
    if taken:
        pytest.fail(f"the tour's ports {taken} are in use on 127.0.0.1; stop whatever listens there")
    commands = doc_commands()
    if counts == "scaled":
        commands = [scaled(command) for command in commands]
    sections = {(command.document, command.section) for command in commands}
    assert {("README.md", "A five-minute tour"), ("README.md", "Shell recipes"), ("README.md", "Shell completion"),
            ("docs/gateways.md", "")} <= sections, sections
    assert commands[0].background and "simulate" in commands[0].text, "the tour starts the simulated fleet"
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "docs.sh"
    script.write_text(script_for(commands, out))
    try:
        subprocess.run(["bash", str(script)], cwd=work, env=env, timeout=DEADLINE_S, capture_output=True)
    except subprocess.TimeoutExpired:
        current = commands[int((out / "current").read_text())]
        pytest.fail(f"the docs run passed {DEADLINE_S} s at ({current.document}): {current.text}")

    def said(number, stream):
        path = out / f"{number}.{stream}"
        return path.read_text(errors="replace") if path.exists() else ""

    problems = []
    for number, command in enumerate(commands):
        if command.skip:
            continue
        code = said(number, "rc").strip()
        expected = {"0", "130"} if command.background else {str(command.expected)}  # Ctrl-C: 130 is fine
        if code not in expected or "Traceback" in said(number, "err"):
            where = f"{command.document}: {command.section}"
            problems.append(f"[{where}] {command.text}\n  exit {code or '?'}, expected {command.expected}"
                            f"\n  stdout: {said(number, 'out')[-600:]!r}\n  stderr: {said(number, 'err')[-900:]!r}")
    assert not problems, "doc commands that do not work as written:\n" + "\n".join(problems)

    def output_of(words, stream="out"):
        return next(said(n, stream) for n, command in enumerate(commands) if words in command.text)

    assert "unregistered" in said(0, "err"), said(0, "err")  # the fleet simulate registered is gone again
    assert not Fleet(config=home / ".config" / "ollamactl" / "instances.toml",
                     state_dir=home / ".local" / "state" / "ollamactl").instances()
    assert "llama3.2:latest" in output_of("from openai import OpenAI")  # the SDK listed the simulator's models
    assert "sim-1" in output_of("health --watch")
    assert "HTTP 503: server busy" in output_of("run llama3.2 hi --verbose", "err")  # the failover shows
    assert "127.0.0.1:11501" not in output_of("pick -n 2")  # a refused instance leaves the rotation
    assert (work / "vectors.json").read_text().startswith('{"model":"nomic-embed-text","embeddings":[[')
    assert "model_list:" in (work / "litellm.yaml").read_text()  # docs/gateways.md's export ran in the tour's fleet



def test_the_extractor_reads_continuations_heredocs_and_the_comments_meant_for_it():
    from doc_shell import commands_of, sections, sh_blocks

    text = """intro
```sh
opening
```
## A new section

```sh
# a comment line
ollamactl thing --watch   # a live view; Ctrl-C stops it
curl -d '{"a": "# not a comment"}' x  # exits 4: explained
seq 3 | xargs sh -c 'echo \\
    {}'
python - <<'END'
print("# inside")
END
ollama list   # not run by the docs test: no ollama CLI here
```

```toml
not = "shell"
```
"""
    (_, opening), (heading, body) = sections(text)
    assert sh_blocks(opening) == ["opening\n"] and heading == "A new section"
    [block] = sh_blocks(body)
    found = commands_of(block, heading)
    assert [c.text.splitlines()[0] for c in found] == [
        "ollamactl thing --watch", "curl -d '{\"a\": \"# not a comment\"}' x", "seq 3 | xargs sh -c 'echo \\",
        "python - <<'END'", "ollama list"]
    assert found[0].background and not found[1].background
    assert found[1].expected == 4 and found[0].expected == 0
    assert found[2].text.endswith("{}'") and found[3].text.endswith("\nEND")
    assert found[4].skip == "no ollama CLI here"
