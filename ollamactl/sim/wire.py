"""The simulator's hand-written HTTP/1.1 layer: requests in, replies and NDJSON streams out, exactly."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import Any


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.1 request we can read."""


@dataclass
class Request:
    """One request as read off the connection (header names in lower case, the query string dropped)."""

    method: str
    path: str
    version: str
    headers: dict[str, str]
    raw_body: bytes

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass
class Reply:
    """A whole (non-streamed) answer; `close` ends the connection after it."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    close: bool = False


@dataclass
class Stream:
    """An NDJSON answer: `lines` paced by `interval`, then `final` (None: the stream just stops).
    With `sse`, server-sent events instead (`data: {...}` blocks, then `data: [DONE]` after a final).

    `delivered`, when set, runs once the whole stream has been written (a pull takes effect then)."""

    lines: list[dict[str, Any]]
    final: dict[str, Any] | None
    interval: float
    delivered: Callable[[], None] | None = None
    sse: bool = False


def json_reply(status: int, payload: Any, close: bool = False) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, body, "application/json; charset=utf-8", close)


def text_reply(status: int, text: str) -> Reply:
    return Reply(status, text.encode(), "text/plain; charset=utf-8")


def error_reply(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError as exc:  # a line longer than the stream's limit
        raise BadRequest("line too long") from exc


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    """Read one request; None when the client closed the connection between requests."""
    line = await _readline(reader)
    while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112, 2.2)
        line = await _readline(reader)
    if not line:
        return None
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {line[:80]!r}")
    method, target, version = parts
    headers = await _read_headers(reader)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await _read_body(reader, headers)
    return Request(method, target.split("?", 1)[0], version, headers, body)


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = await _readline(reader)
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise BadRequest(f"bad header line {line[:80]!r}")
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise BadRequest("bad Content-Length") from exc
    if length < 0:
        raise BadRequest("bad Content-Length")
    return await reader.readexactly(length)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await _readline(reader)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadRequest("bad chunk size") from exc
        if size == 0:
            while (await _readline(reader)) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Date: {formatdate(usegmt=True)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Wire:
    """Writes one response. With `drip`, byte by byte: drip() is the pause before each next byte,
    None once dripping stops (the rest then goes at once)."""

    def __init__(self, writer: asyncio.StreamWriter, drip: Callable[[], float | None] | None = None) -> None:
        self.writer = writer
        self.drip = drip

    async def send(self, data: bytes) -> None:
        if self.drip is not None:
            data = await self._drip(data, self.drip)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _drip(self, data: bytes, pause: Callable[[], float | None]) -> bytes:
        """Write byte by byte until done or dripping stops; return what is left to write."""
        for offset in range(len(data)):
            seconds = pause()
            if seconds is None:
                return data[offset:]
            await asyncio.sleep(seconds)
            self.writer.write(data[offset : offset + 1])
            await self.writer.drain()
        return b""

    async def reply(self, reply: Reply, head_only: bool, keep_alive: bool) -> None:
        headers = [("Content-Type", reply.content_type)] if reply.content_type else []
        headers.append(("Content-Length", str(len(reply.body))))
        if not keep_alive:
            headers.append(("Connection", "close"))
        await self.send(_head(reply.status, headers) + (b"" if head_only else reply.body))

    async def stream(self, stream: Stream, keep_alive: bool) -> None:
        kind = "text/event-stream" if stream.sse else "application/x-ndjson"
        headers = [("Content-Type", kind), ("Transfer-Encoding", "chunked")]
        if not keep_alive:
            headers.append(("Connection", "close"))
        await self.send(_head(200, headers))
        for line in stream.lines:
            if stream.interval:
                await asyncio.sleep(stream.interval)
            await self.send(_chunk(line, stream.sse))
        if stream.final is not None:
            await self.send(_chunk(stream.final, stream.sse))
            if stream.sse and "error" not in stream.final:
                await self.send(_frame(b"data: [DONE]\n\n"))
        await self.send(b"0\r\n\r\n")
        if stream.delivered is not None:
            stream.delivered()


def _chunk(line: dict[str, Any], sse: bool = False) -> bytes:
    if "created_at" in line:
        line = {**line, "created_at": timestamp()}
    data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()
    return _frame(b"data: " + data + b"\n\n" if sse else data + b"\n")


def _frame(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def timestamp(moment: datetime | None = None) -> str:
    """`moment` (default: now) as Ollama writes times: RFC 3339 in UTC with a Z."""
    return (moment or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")


def allowed_host(host_header: str) -> bool:
    """Ollama's check for a loopback-bound server: loopback/private/unspecified IPs and local names."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("", "localhost") or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified

