"""`ollamactl run`'s body: generate or chat with a model on the fleet, streamed to stdout as it arrives.

It builds one typed GenerateRequest (what is sent and where it may go) and a _View (how it is
shown) from the parsed options, and hands the request to `Fleet.stream`; the text is written
straight to sys.stdout here (no rich per line), thinking dimmed on stderr. Typer-free: the
launcher's fast route (cli/fast_route.py) calls `run` directly, the Typer declaration in
cli/routing/run_cmd.py forwards its parameters to it (cli/commands.py `forwarded`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ollamactl import ModelMissing, checked_model, checked_number
from ollamactl.cli import output
from ollamactl.cli.context import fleet
from ollamactl.cli.models.missing_model import with_pull_hint
from ollamactl.cli.models.model_options import keep_alive_value, typed_options
from ollamactl.cli.routing.request_input import parse_format, parse_option, read_prompt
from ollamactl.cli.routing.spinner import Spinner

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl import Fleet, GenerateRequest


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
        self.show_thinking = show_thinking
        self.last = ""
        self.thinking = False
        self.tty_err = sys.stderr.isatty()
        self.tty_out = self.out.isatty()
        self.dim, self.undim = ("\x1b[2m", "\x1b[0m") if self.tty_err else ("", "")
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
        self.pending.append(output.answer_text(text, self.tty_out))
        self.last = text
        return True

    def think(self, text: Any) -> bool:
        if not text or not isinstance(text, str):
            return False
        self.flush()
        sys.stderr.write(self.dim + output.answer_text(text, self.tty_err) + self.undim)
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


@dataclass(frozen=True)
class _View:
    """How `run` shows the answer: presentation only (the GenerateRequest says what is sent, and where)."""

    json_output: bool  # the raw NDJSON objects instead of the text
    show_thinking: bool  # a thinking model's thoughts, dimmed on stderr
    verbose: bool  # instance, failovers and timings on stderr


def run(model: str, prompt: list[str] | None, chat: bool, system: str | None, json_output: bool, no_stream: bool,
        fmt: str | None, option: list[str] | None, keep_alive: str | None, think: bool | None,
        instance_ref: str | None, strategy: str | None, key: str | None, tries: int, wait: float | None,
        strict: bool, connect_timeout: float | None, first_byte_timeout: float | None, verbose: bool) -> None:
    """Stream MODEL's answer to the prompt (see `ollamactl run --help` for the options): the
    options become one GenerateRequest and a _View here; nothing below takes them one by one."""
    from ollamactl import GenerateRequest, Timeouts

    began = time.monotonic()
    checked_number("tries", tries)  # before the prompt is read
    checked_model(model)
    options = typed_options((parse_option(item) for item in option or ()), output.warn)
    if (not prompt or prompt == ["-"]) and sys.stdin.isatty():
        output.say("reading the prompt from the terminal; end it with Ctrl-D")
    text = read_prompt(prompt)
    current = fleet()
    request = GenerateRequest(
        model=model, prompt=text, chat=chat, system=system, stream=not no_stream, format=parse_format(fmt),
        options=options, keep_alive=keep_alive_value(keep_alive), think=think,
        instance=instance_ref, strategy=strategy, key=key, tries=tries, wait=wait, strict=strict,
        timeouts=Timeouts.from_settings(current.registry(), connect_timeout, first_byte_timeout),
    )
    _stream(current, request, _View(json_output, show_thinking=think is not False, verbose=verbose), began)


def _stream(current: Fleet, request: GenerateRequest, view: _View, began: float) -> None:
    """Send `request` through `current`, the answer to stdout as `view` says, as it arrives."""
    writer = _JsonOut() if view.json_output else _TextOut(request.chat, view.show_thinking)
    spinner = Spinner("choosing an instance") if sys.stderr.isatty() else None

    def log(text: str) -> None:
        if spinner is not None:
            spinner.show(text)
        if view.verbose:
            (spinner.say if spinner is not None else output.say)(text)

    def emit(line: bytes, obj: dict) -> bool:
        if spinner is not None:
            spinner.stop()  # the first line has arrived
        return writer.emit(line, obj)

    try:
        result = current.stream(request, emit, log=log if spinner or view.verbose else None, flush=writer.flush)
    except ModelMissing as error:
        raise with_pull_hint(error) from None
    finally:
        if spinner is not None:
            spinner.stop()
        writer.finish()  # what arrived before a failure or Ctrl-C stays on screen
    if view.verbose:
        _report_timing(result, began)


def _report_timing(result: Any, began: float) -> None:
    final = result.final
    parts = [f"served by {result.instance.id} ({result.instance.url})"]
    if result.first_output_s is not None:
        parts.append(f"first token {result.first_output_s:.3f} s after the request"
                     f" ({result.first_output_at - began:.3f} s after the command started)")
    count, duration = final.get("eval_count"), final.get("eval_duration")
    if isinstance(count, int) and isinstance(duration, (int, float)) and duration > 0:
        parts.append(f"{count} tokens at {count / duration * 1e9:.1f} tokens/s")
    output.say("; ".join(parts))
