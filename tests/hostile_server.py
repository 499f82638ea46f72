"""A hostile HTTP server on 127.0.0.1 for tests (a pytest plugin named in conftest.py).

Where the simulator plays an honest Ollama with faults, this one plays a server that attacks the
client: bodies without end, a hundred thousand models, escape sequences and rich markup in every
text, and error messages that echo the `Authorization` header back. Each route is a function of
the request handler; the server and every handler thread are stopped and joined at teardown, and
an endless writer stops as soon as the client goes away or the server is closed.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Route = Callable[["_Handler"], None]
ESC = "\x1b"
BEL = "\x07"
# What a hostile server puts in every text: retitle the terminal, clear it, and rich markup.
NASTY = f"boom{ESC}]0;OWNED{BEL}{ESC}[2J[red]x[/red][/bad][link=http://evil.example]click[/link]"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: endless bodies are easy
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            send(self, 404, b"404 page not found", "text/plain")
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: that is the point
            pass

    do_GET = do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins every handler thread

    def __init__(self, routes: dict[str, Route]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.stopping = threading.Event()
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.errors: list[BaseException] = []  # what went wrong in a route (checked at teardown)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (the point of a cap) is expected; anything else is kept for teardown.
        Never printed: an in-process test's captured stderr must hold only ollamactl's words."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError) and error is not None:
            self.errors.append(error)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def send(handler: _Handler, status: int, body: bytes, content_type: str = "application/json") -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def answer(data: Any, status: int = 200) -> Route:
    """A route answering `data` as JSON."""
    body = json.dumps(data).encode()
    return lambda handler: send(handler, status, body)


def endless(prefix: bytes = b'{"models":[', chunk: bytes = b'{"name":"m:latest"},' * 500) -> Route:
    """A route that starts a JSON answer and never ends it."""

    def route(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(prefix)
        while not handler.server.stopping.is_set():
            handler.wfile.write(chunk)

    return route


def echo_authorization(status: int = 500) -> Route:
    """A route whose error message quotes the Authorization header it received."""

    def route(handler: _Handler) -> None:
        got = handler.headers.get("Authorization") or ""
        body = json.dumps({"error": f"invalid token: {got}"}).encode()
        send(handler, status, body)

    return route


def tags(names: list[str]) -> Route:
    return answer({"models": [{"name": n, "model": n, "digest": "d" * 64, "size": 1} for n in names]})


def ollama_like(version: str = "0.5.0", names: tuple[str, ...] = ("llama3.2:latest",)) -> dict[str, Route]:
    """The routes of a healthy-looking server (version, tags, ps) to override one by one."""
    return {"/api/version": answer({"version": version}), "/api/tags": tags(list(names)),
            "/api/ps": answer({"models": []})}


@pytest.fixture
def hostile() -> Iterator[Callable[[dict[str, Route]], _Server]]:
    """Start hostile servers: `hostile(routes).url`; all stopped and joined at teardown."""
    servers: list[tuple[_Server, threading.Thread]] = []

    def start(routes: dict[str, Route]) -> _Server:
        server = _Server(routes)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server

    yield start
    for server, thread in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
    assert [error for server, _ in servers for error in server.errors] == []
