"""`ollamactl metrics`: what each instance served, as Prometheus text, as JSON, or served over HTTP."""

from __future__ import annotations

import sys
from typing import Any

import typer

from ollamactl import OllamactlError, UsageError
from ollamactl.cli import output
from ollamactl.cli.confirm import confirm
from ollamactl.cli.context import fleet

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the Prometheus text format
DEFAULT_PORT = 9464  # the port OpenTelemetry's Prometheus exporter uses; free on most machines


def current_text() -> str:
    """The exposition of the fleet now: every enabled instance's health fresh (probed where stale)."""
    from ollamactl import exposition

    current = fleet()
    current.health()
    return exposition(current.metrics())


@app.command()
def metrics(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of Prometheus text."),
    serve: str | None = typer.Option(None, "--serve", metavar="ADDR",
                                     help="Serve /metrics over HTTP on ADDR (PORT, HOST:PORT; default host"
                                          " 127.0.0.1) until Ctrl-C, for Prometheus to scrape."),
    reset: bool = typer.Option(False, "--reset", help="Clear every instance's counters (asks; see --yes)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --reset: do not ask."),
) -> None:
    """Print what each instance served, in the Prometheus text format (or --json).

    Counted by every run, embed and exec on this machine (or the team, on the Redis store):
    requests by outcome, time to first token, tokens per second per model, embedding inputs, and the
    leases held now. For node_exporter's textfile collector, or --serve for a scrape.

    Example: ollamactl metrics > /var/lib/node_exporter/textfile/ollamactl.prom
    """
    if sum((json_output, serve is not None, reset)) > 1:
        raise UsageError("--json, --serve and --reset do one thing each", "give one of them")
    if reset:
        confirm("Clear the metrics of every instance?", yes, "clear the metrics")
        fleet().reset_metrics()
        output.say("metrics cleared")
        return
    if serve is not None:
        _serve(*_address(serve))
        return
    if json_output:
        current = fleet()
        current.health()
        output.print_json({"instances": [row.public() for row in current.metrics()]})
        return
    # Exact for a file or pipe (a model name is any text the format allows); on a terminal a
    # server's escape sequences are shown, never obeyed.
    sys.stdout.write(output.answer_text(current_text(), sys.stdout.isatty()))
    sys.stdout.flush()


def _address(text: str) -> tuple[str, int]:
    """`9464`, `:9464`, `127.0.0.1:9464`, `[::1]:9464` -> (host, port); UsageError otherwise."""
    import ipaddress

    raw = text.strip()
    host, sep, port_text = raw.rpartition(":") if ":" in raw else ("", "", raw)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--serve {text!r} is not PORT or ADDRESS:PORT",
                         "e.g. --serve 9464 (loopback) or --serve 0.0.0.0:9464 (every interface)") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--serve {text!r}: port {port} is out of range",
                         "use a port from 1 to 65535, or 0 for any free one")
    return host, port


def _serve(host: str, port: int) -> None:
    """Answer GET /metrics with the exposition of the moment, until Ctrl-C."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, b"only /metrics is here\n")
                return
            try:
                body = current_text().encode()
            except OllamactlError as error:
                self._answer(500, f"{error.headline()}\n".encode())
                return
            self._answer(200, body)

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server_class: Any = ThreadingHTTPServer
    if ":" in host:
        import socket

        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    try:
        server = server_class((host, port), Handler)
    except OSError as error:
        raise OllamactlError(f"cannot listen on {host}:{port}: {error.strerror or error}",
                             "choose another --serve address or port") from None
    shown = f"[{host}]" if ":" in host else host
    output.say(f"serving Prometheus metrics at http://{shown}:{server.server_address[1]}/metrics"
               " (Ctrl-C stops)")
    with server:
        server.serve_forever(poll_interval=0.2)
