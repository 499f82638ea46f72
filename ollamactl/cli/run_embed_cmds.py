"""Proxy commands: `run` (generate/chat on the fleet, streamed) and `embed` (batches across the fleet).

They parse, select instances through routing, and hand the work to the core (ollamactl.core.generate for
run, ollamactl.core.embed for embed); output is written here. The text stream is written straight
to sys.stdout (no rich per line).
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import typer

from ollamactl.cli.completers import complete_instance, complete_model
from ollamactl.core.errors import ExitCode, UsageError, warn

app = typer.Typer()  # this module's commands; cli.app composes them

_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")
_PROGRESS_MIN_BATCHES = 4


def _say(text: str) -> None:
    sys.stderr.write(f"ollamactl: {text}\n")
    sys.stderr.flush()


def _interrupted() -> typer.Exit:
    try:
        sys.stderr.write("\nollamactl: interrupted\n")
        sys.stderr.flush()
    except OSError:
        pass
    return typer.Exit(int(ExitCode.INTERRUPTED))


def _broken_pipe() -> typer.Exit:
    """The reader of stdout went away: stop quietly (and keep Python from complaining at exit)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return typer.Exit(int(ExitCode.FAILED))


# ---------------------------------------------------------------------------------------------
# Parsing helpers


def parse_option(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` with a typed value: int, float, true/false, JSON, else the string itself."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"option {text!r} is not KEY=VALUE", "e.g. -o temperature=0.2 -o num_ctx=8192")
    return key, typed_value(value)


def typed_value(value: str) -> Any:
    stripped = value.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    if stripped in ("true", "false"):
        return stripped == "true"
    if stripped[:1] in ('[', '{', '"') or stripped == "null":
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return value


def parse_format(value: str | None) -> Any:
    """`json`, or a path to a JSON-schema file (its object is sent)."""
    if value is None or value == "json":
        return value
    path = Path(value)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--format: no such file {value!r}", "use json or the path of a JSON-schema file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--format: cannot read {value!r}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        schema = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"--format: {value} is not valid JSON ({exc})", "give a JSON-schema object") from None
    if not isinstance(schema, dict):
        raise UsageError(f"--format: {value} holds a JSON {type(schema).__name__}, not an object",
                         "give a JSON-schema object such as {\"type\": \"object\", ...}")
    return schema


def parse_keep_alive(value: str | None) -> Any:
    """A number is seconds (sent as a number); anything else is a duration string such as 10m."""
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        raise UsageError("--keep-alive is empty", "give a duration such as 10m, 3600 or -1")
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    return stripped


def read_prompt(words: list[str] | None) -> str:
    if words and words != ["-"]:
        prompt = " ".join(words)
    else:
        prompt = sys.stdin.read()
        if prompt.endswith("\n"):
            prompt = prompt[:-1]
    if not prompt.strip():
        raise UsageError("the prompt is empty", "give it as arguments or on stdin")
    if not _is_utf8(prompt):
        raise UsageError("the prompt is not UTF-8 text")
    return prompt


def _is_utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8 (argv and stdin keep them as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _instances_for(request_type: str, model: str, instance_ref: str | None, strategy: str | None,
                   key: str | None):
    """(registry, routing decision or None, instances to try in order)."""
    from ollamactl.core import registry, routing

    reg = registry.load()
    if instance_ref is not None:
        return reg, None, [reg.find(instance_ref)]
    decision = routing.select(routing.Request(request_type=request_type, model=model, strategy=strategy, key=key))
    return reg, decision, decision.failover_order()


# ---------------------------------------------------------------------------------------------
# run


class _BufferedOut:
    """Collects what a stream produces and writes it to stdout in one call when the core flushes."""

    def __init__(self) -> None:
        self.out = sys.stdout
        self.pending: list[str] = []  # fragments since the last flush (stdout may be unbuffered)

    def flush(self) -> None:
        if self.pending:
            self.out.write("".join(self.pending))
            self.pending.clear()
        self.out.flush()


class _TextOut(_BufferedOut):
    """Emits the text of each line to stdout and thinking to stderr (flushed per fragment).

    Stdout is flushed by the core's `flush` hook before every read that could wait: each fragment
    is out before ollamactl waits for the next, and a burst already received costs one write.
    """

    def __init__(self, chat: bool, show_thinking: bool):
        super().__init__()
        self.chat = chat
        self.show_thinking = show_thinking
        self.last = ""
        self.thinking = False
        tty = sys.stderr.isatty()
        self.dim, self.undim = ("\x1b[2m", "\x1b[0m") if tty else ("", "")
        self.emit = self.emit_chat if chat else self.emit_generate

    def emit_generate(self, line: bytes, obj: dict) -> bool:
        shown = False
        thinking = obj.get("thinking")
        if thinking and self.show_thinking:
            shown = self.think(thinking)
        text = obj.get("response")
        if text:
            return self.text(text)
        return shown

    def emit_chat(self, line: bytes, obj: dict) -> bool:
        message = obj.get("message")
        if not message:
            return False
        text = message.get("content")
        shown = False
        if "thinking" in message and self.show_thinking:
            shown = self.think(message["thinking"])
        if text:
            return self.text(text)
        return shown

    def text(self, text: str) -> bool:
        if self.thinking:
            self.end_thinking()
        self.pending.append(text)
        self.last = text
        return True

    def think(self, text: Any) -> bool:
        if not text or not isinstance(text, str):
            return False
        self.flush()
        sys.stderr.write(self.dim + text + self.undim)
        sys.stderr.flush()
        self.thinking = True
        return True

    def end_thinking(self) -> None:
        self.thinking = False
        sys.stderr.write("\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.thinking:
            self.end_thinking()
        if self.last and not self.last.endswith("\n"):
            self.pending.append("\n")
        self.flush()


class _JsonOut(_BufferedOut):
    """--json: every NDJSON object as received, one per line."""

    def emit(self, line: bytes, obj: dict) -> bool:
        self.pending.append(line.decode("utf-8", "replace").strip() + "\n")
        return True

    def finish(self) -> None:
        self.flush()


@app.command()
def run(
    model: str = typer.Argument(..., help="Model name, e.g. llama3.2.", autocompletion=complete_model),
    prompt: list[str] | None = typer.Argument(None, help="Prompt words (joined by spaces); none or - reads stdin."),
    chat: bool = typer.Option(False, "--chat", help="Use /api/chat instead of /api/generate."),
    system: str | None = typer.Option(None, "--system", help="System prompt."),
    json_output: bool = typer.Option(False, "--json", help="Print the raw NDJSON objects, one per line."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Ask for one answer object (stream: false)."),
    fmt: str | None = typer.Option(None, "--format", help="json, or the path of a JSON-schema file."),
    option: list[str] | None = typer.Option(None, "--option", "-o", metavar="KEY=VALUE",
                                             help="Model option (repeatable), e.g. -o temperature=0.2."),
    keep_alive: str | None = typer.Option(None, "--keep-alive", metavar="DURATION",
                                          help="How long the model stays loaded: 10m, 3600, -1, 0."),
    think: bool | None = typer.Option(None, "--think/--no-think", help="Ask a thinking model to think (or not)."),
    instance_ref: str | None = typer.Option(None, "--instance", metavar="ID_OR_NAME",
                                            help="Use this instance (no selection, no failover).",
                                            autocompletion=complete_instance),
    strategy: str | None = typer.Option(None, "--strategy", "-s", help="Selection strategy (default: settings)."),
    key: str | None = typer.Option(None, "--key", help="Sticky: the same key gets the same instance."),
    tries: int = typer.Option(3, "--tries", min=1, help="Instances to try before giving up."),
    connect_timeout: float | None = typer.Option(None, "--connect-timeout", min=0.001, metavar="S",
                                                 help="Seconds to connect (default: settings, 3)."),
    first_byte_timeout: float | None = typer.Option(None, "--first-byte-timeout", min=0.001, metavar="S",
                                                    help="Seconds until the first line (default: settings, 600)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="On stderr: instance, failovers, timings."),
) -> None:
    """Generate text with MODEL on the fleet, streamed to stdout as it arrives.

    Fails over to another instance only before any output (connect error, timeout, 5xx, busy,
    model missing); once text has been printed a failure ends the command (exit 1).

    Example: ollamactl run llama3.2 "Why is the sky blue?"
    """
    began = time.perf_counter()
    try:
        code = _run(model, prompt, chat, system, json_output, no_stream, fmt, option or [], keep_alive, think,
                    instance_ref, strategy, key, tries, connect_timeout, first_byte_timeout, verbose, began)
    except KeyboardInterrupt:
        raise _interrupted() from None
    except BrokenPipeError:
        raise _broken_pipe() from None
    if code:
        raise typer.Exit(code)


def _run(model: str, prompt_words: list[str] | None, chat: bool, system: str | None, json_output: bool,
         no_stream: bool, fmt: str | None, option: list[str], keep_alive: str | None, think: bool | None,
         instance_ref: str | None, strategy: str | None, key: str | None, tries: int,
         connect_timeout: float | None, first_byte_timeout: float | None, verbose: bool, began: float) -> int:
    from ollamactl.core import generate

    if not model.strip():
        raise UsageError("the model name is empty", "give a model such as llama3.2")
    options = dict(parse_option(item) for item in option)
    schema = parse_format(fmt)
    alive = parse_keep_alive(keep_alive)
    prompt = read_prompt(prompt_words)

    body: dict[str, Any] = {"model": model}
    if chat:
        messages = [{"role": "system", "content": system}] if system is not None else []
        body["messages"] = messages + [{"role": "user", "content": prompt}]
        path = "/api/chat"
    else:
        body["prompt"] = prompt
        if system is not None:
            body["system"] = system
        path = "/api/generate"
    body["stream"] = not no_stream
    if schema is not None:
        body["format"] = schema
    if options:
        body["options"] = options
    if alive is not None:
        body["keep_alive"] = alive
    if think is not None:
        body["think"] = think

    reg, _, instances = _instances_for("chat", model, instance_ref, strategy, key)
    timeouts = generate.Timeouts.from_settings(reg, connect_timeout, first_byte_timeout)
    writer = _JsonOut() if json_output else _TextOut(chat, show_thinking=think is not False)
    log = _say if verbose else None
    try:
        result = generate.complete(instances, path, body, writer.emit, timeouts=timeouts, tries=tries, log=log,
                                  flush=writer.flush)
    except generate.StreamBroken:
        writer.finish()
        raise
    writer.finish()
    if verbose:
        _report_timing(result, began)
    return 0


def _report_timing(result: Any, began: float) -> None:
    final = result.final
    parts = [f"served by {result.instance.id} ({result.instance.url})"]
    if result.first_output_s is not None:
        parts.append(f"first token {result.first_output_s:.3f} s after the request"
                     f" ({time.perf_counter() - began:.3f} s since the command started)")
    count, duration = final.get("eval_count"), final.get("eval_duration")
    if isinstance(count, int) and isinstance(duration, (int, float)) and duration > 0:
        parts.append(f"{count} tokens at {count / duration * 1e9:.1f} tokens/s")
    _say("; ".join(parts))


# ---------------------------------------------------------------------------------------------
# embed


def _raw_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines split on b"\\n" only (kept on each line), read straight from the file descriptor.

    Reading the descriptor (not Python's buffered object) matters: the input is read on a daemon
    thread, and one blocked inside a BufferedReader at exit (Ctrl-C while stdin is still open)
    makes the interpreter abort instead of exiting cleanly.
    """
    import os

    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # an in-memory stream (tests)
        yield from stream
        return
    rest: list[bytes] = []  # the reads since the last newline, joined once (a huge line stays linear)
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            break
        if b"\n" not in data:
            rest.append(data)
            continue
        if rest:
            rest.append(data)
            data = b"".join(rest)
        *lines, tail = data.split(b"\n")
        for line in lines:
            yield line + b"\n"
        rest = [tail] if tail else []
    if rest:
        yield b"".join(rest)


def _line_texts(stream: IO[bytes], source: str) -> Iterator[str]:
    """One text per line (only the trailing newline removed; a UTF-8 byte order mark at the start is
    not text); an empty line or bad UTF-8 is an error."""
    for number, raw in enumerate(_raw_lines(stream), 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        if not raw:
            raise UsageError(f"line {number} of {source} is empty",
                             "every line is one text to embed; remove empty lines")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"line {number} of {source} is not UTF-8 text") from None


def _prescan(stream: IO[bytes], source: str) -> int | None:
    """Check a seekable input (a file, or stdin redirected from one) fully before any request, so
    bad input writes nothing; returns its line count. Pipes and terminals are read lazily instead."""
    import os

    try:
        fd = stream.fileno()
        position = os.lseek(fd, 0, os.SEEK_CUR)
    except (OSError, ValueError, AttributeError):
        try:
            if not stream.seekable():
                return None
            position = stream.tell()
        except (OSError, ValueError):
            return None
        count = sum(1 for _ in _line_texts(stream, source))
        stream.seek(position)
        return count
    count = sum(1 for _ in _line_texts(stream, source))
    os.lseek(fd, position, os.SEEK_SET)
    return count


def _open_inputs(texts: list[str] | None, file: str | None) -> tuple[Iterator[str], int | None, IO[bytes] | None]:
    """(texts, how many if known, a file to close)."""
    if texts and file is not None:
        raise UsageError("give texts as arguments or with --file, not both")
    if texts:
        for number, text in enumerate(texts, 1):
            if not text:
                raise UsageError(f"text argument {number} is empty", "every argument is one text to embed")
            if not _is_utf8(text):
                raise UsageError(f"text argument {number} is not UTF-8 text")
        return iter(texts), len(texts), None
    if file is None or file == "-":
        stream, source, handle = sys.stdin.buffer, "stdin", None
    else:
        try:
            stream = handle = open(file, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise UsageError(f"--file: cannot open {file!r}: {exc.strerror}") from None
        source = file
    total = _prescan(stream, source)
    return _line_texts(stream, source), total, handle


class _EmbedOut:
    """Writes vectors in input order: one JSON object, or --ndjson lines; holds none of them."""

    def __init__(self, model: str, ndjson: bool):
        self.out = sys.stdout
        self.ndjson = ndjson
        self.head = '{"model":' + json.dumps(model) + ',"embeddings":['
        self.started = False

    def write(self, start: int, vectors: list) -> None:
        dumps = json.dumps
        if self.ndjson:
            self.out.write("".join(f'{{"index":{start + offset},"embedding":{dumps(vector, separators=(",", ":"))}}}\n'
                                   for offset, vector in enumerate(vectors)))
            self.out.flush()
            return
        text = ",".join(dumps(vector, separators=(",", ":")) for vector in vectors)
        if self.started:
            self.out.write("," + text)
        else:
            self.out.write(self.head + text)
            self.started = True

    def finish(self) -> None:
        if not self.ndjson:
            self.out.write(("" if self.started else self.head) + "]}\n")
        self.out.flush()


class _Progress:
    """A rich progress bar on stderr, started only for large inputs on a terminal."""

    def __init__(self, total: int | None, batch_size: int):
        self.total = total
        self.threshold = batch_size * _PROGRESS_MIN_BATCHES
        self.enabled = sys.stderr.isatty() and (total is None or total > self.threshold)
        self.bar: Any = None

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if self.total is None and done <= self.threshold:
                return
            from ollamactl.cli import output

            self.bar = output.ProgressBar("embedding", self.total)
        self.bar.update(done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def embed(
    model: str = typer.Argument(..., help="Embedding model, e.g. nomic-embed-text.", autocompletion=complete_model),
    texts: list[str] | None = typer.Argument(None, help="Texts to embed; none: one per line from --file or stdin."),
    file: str | None = typer.Option(None, "--file", metavar="PATH|-", help="Read one text per line."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per request."),
    ndjson: bool = typer.Option(False, "--ndjson", help='One line {"index": i, "embedding": [...]} per text.'),
    allow_mixed: bool = typer.Option(False, "--allow-mixed",
                                     help="Use instances whose copies of the model differ (digests)."),
    instance_ref: str | None = typer.Option(None, "--instance", metavar="ID_OR_NAME",
                                            help="Use only this instance.", autocompletion=complete_instance),
    per_instance: int = typer.Option(2, "--per-instance", min=1, help="Requests in flight per instance."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="On stderr: instances, retries, timings."),
) -> None:
    """Embed texts with every eligible instance at once; vectors come out in input order.

    Example: ollamactl embed nomic-embed-text --file docs.txt --ndjson > vectors.ndjson
    """
    began = time.perf_counter()
    try:
        _embed(model, texts, file, batch_size, ndjson, allow_mixed, instance_ref, per_instance, verbose, began)
    except KeyboardInterrupt:
        raise _interrupted() from None
    except BrokenPipeError:
        raise _broken_pipe() from None


def _embed(model: str, texts: list[str] | None, file: str | None, batch_size: int, ndjson: bool,
           allow_mixed: bool, instance_ref: str | None, per_instance: int, verbose: bool, began: float) -> None:
    from ollamactl.core import embed, generate
    from ollamactl.core.errors import OllamactlError

    if not model.strip():
        raise UsageError("the model name is empty", "give a model such as nomic-embed-text")
    inputs, total, handle = _open_inputs(texts, file)
    try:
        batches = embed.batched(inputs, batch_size)
        first = next(batches, None)
        if first is None:
            raise UsageError("no texts to embed", "give texts as arguments, with --file, or on stdin")
        reg, decision, instances = _instances_for("embedding", model, instance_ref, None, None)
        if decision is not None:
            instances = list(decision.candidates) or instances
            digests = embed.model_digests(instances, decision.health, model)
            if len(set(digests.values())) > 1:
                listing = ", ".join(f"{iid} {digest[:12]}" for iid, digest in digests.items())
                if not allow_mixed:
                    raise OllamactlError(f"the instances hold different builds of {model}: {listing}",
                                         "vectors from different builds do not mix; pull the same build"
                                         " everywhere, pick one with --instance, or pass --allow-mixed")
                warn(f"mixing different builds of {model} (--allow-mixed): {listing}")
        if verbose:
            _say("embedding on " + ", ".join(generate.label(i) for i in instances)
                 + f" ({per_instance} in flight each, {batch_size} texts per batch)")
        timeouts = generate.Timeouts.from_settings(reg)
        out = _EmbedOut(model, ndjson)
        progress = _Progress(total, batch_size)
        try:
            summary = embed.embed(instances, model, itertools.chain([first], batches), out.write, timeouts=timeouts,
                                   per_instance=per_instance, log=_say if verbose else None, progress=progress)
        finally:
            progress.stop()
        out.finish()
    finally:
        if handle is not None:
            handle.close()
    if verbose:
        served = ", ".join(f"{iid}: {count}" for iid, count in sorted(summary.per_instance.items()))
        _say(f"{summary.texts} texts in {summary.batches} batches in {time.perf_counter() - began:.3f} s"
             f" (batches per instance: {served}; failed requests: {len(summary.failures)};"
             f" hedged: {summary.hedged})")
