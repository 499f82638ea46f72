"""`ollamactl embed`'s body: texts to vectors on every eligible instance at once, written in input order.

It reads and checks the input (cli.request_input), hands batches to `Fleet.embed_batches`, and
writes the vectors as one JSON object or NDJSON lines, with a progress bar on a terminal.

Exit 2 means nothing was written: arguments and files are checked whole before the first request.
Piped stdin streams (embedding starts before the input ends), so a bad line found after vectors
were written ends the command with exit 1 and a message saying so; the JSON object is left
unclosed, so no parser takes the partial output for a whole one.

Typer-free: the launcher's fast route (cli/fast_route.py) calls `embed` directly; the Typer
declaration in cli/routing/embed_cmd.py forwards its parameters to it (cli/commands.py `forwarded`).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ollamactl import ModelMissing, OllamactlError, UsageError, checked_model, checked_number
from ollamactl.cli import output
from ollamactl.cli.context import fleet
from ollamactl.cli.models.missing_model import with_pull_hint
from ollamactl.cli.routing.request_input import open_inputs

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable

    from ollamactl import EmbedRequest, EmbedSummary, Fleet

_PROGRESS_MIN_BATCHES = 4


class _EmbedOut:
    """Writes vectors in input order: one JSON object, or --ndjson lines; holds none of them."""

    def __init__(self, model: str, ndjson: bool):
        self.out = sys.stdout
        self.ndjson = ndjson
        self.head = '{"model":' + json.dumps(model, allow_nan=False) + ',"embeddings":['
        self.started = False
        self.written = 0
        # json.dumps with separators builds a new encoder on every call: a third of embed's CPU
        # went there with one call per vector.
        self.encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

    def write(self, start: int, vectors: list) -> None:
        encode = self.encode
        self.written += len(vectors)
        if self.ndjson:
            self.out.write("".join(f'{{"index":{start + offset},"embedding":{encode(vector)}}}\n'
                                   for offset, vector in enumerate(vectors)))
            self.out.flush()
            return
        text = encode(vectors)[1:-1]  # the vectors, comma-separated, in one call
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
            self.bar = output.ProgressBar("embedding", self.total)
        self.bar.update(done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def embed(model: str, texts: list[str] | None, file: str | None, batch_size: int, ndjson: bool, allow_mixed: bool,
          instance_ref: str | None, per_instance: int, connect_timeout: float | None,
          first_byte_timeout: float | None, wait: float | None, strict: bool, verbose: bool) -> None:
    """Embed the texts with every eligible instance at once (see `ollamactl embed --help`): the
    options become one EmbedRequest here; nothing below takes them one by one."""
    from ollamactl import EmbedRequest, Timeouts

    began = time.perf_counter()
    checked_number("batch_size", batch_size)  # before the input is read
    checked_number("per_instance", per_instance)
    checked_model(model)
    current = fleet()
    request = EmbedRequest(model, instance=instance_ref, allow_mixed=allow_mixed, per_instance=per_instance,
                           wait=wait, strict=strict,
                           timeouts=Timeouts.from_settings(current.registry(), connect_timeout, first_byte_timeout))
    inputs, total, handle = open_inputs(texts, file)
    try:
        summary = _embed_all(current, request, inputs, total, batch_size, ndjson, verbose)
    finally:
        if handle is not None:
            handle.close()
    if verbose:
        served = ", ".join(f"{iid}: {count}" for iid, count in sorted(summary.per_instance.items()))
        output.say(f"{summary.texts} texts in {summary.batches} batches in {time.perf_counter() - began:.3f} s"
                   f" (batches per instance: {served}; failed requests: {len(summary.failures)};"
                   f" hedged: {summary.hedged})")


def _embed_all(current: Fleet, request: EmbedRequest, inputs: Iterable[str], total: int | None, batch_size: int,
               ndjson: bool, verbose: bool) -> EmbedSummary:
    """Embed `inputs` in batches of `batch_size` through `current`, the vectors to stdout as they come."""
    from ollamactl import batched

    batches = batched(inputs, batch_size)
    first = next(batches, None)
    if first is None:
        raise UsageError("no texts to embed", "give texts as arguments, with --file, or on stdin")
    out = _EmbedOut(request.model, ndjson)
    progress = _Progress(total, batch_size)
    try:
        summary = current.embed_batches(request, itertools.chain([first], batches), out.write,
                                        log=output.say if verbose else None, progress=progress)
    except ModelMissing as error:
        raise with_pull_hint(error) from None
    except UsageError as late:
        if out.written:  # piped input is checked as it streams: exit 2 would claim nothing was written
            raise OllamactlError(f"{late.message}, found after {out.written} vectors had been written: the"
                                 " output is incomplete", late.hint) from None
        raise
    finally:
        progress.stop()
    out.finish()
    return summary
