"""Simulated instances on loopback ports, the Simulator that runs them on one loop, and the foreground runner.

A SimInstance owns the sockets, the faults and the control endpoint (/_sim/config); what it serves
lives in its InstanceState, which the route handlers answer from."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ollamactl.model_names import normalise_model
from ollamactl.sim.config import (
    CATALOGUE,
    CONTROL_PATH,
    HOST,
    LEGACY_MISSING,
    MODEL_PATHS,
    NOT_OLLAMA_PAGE,
    RUNNER_CRASHED,
    SERVER_BUSY,
    STREAM_BROKEN,
    RecordedRequest,
    SimConfig,
    SimModel,
    upstream_model,
)
from ollamactl.sim.endpoints import ROUTES
from ollamactl.sim.openai_compat import OPENAI_ROUTES
from ollamactl.sim.state import InstanceState
from ollamactl.sim.validation import ApiError, parse_body, request_body
from ollamactl.sim.wire import (
    BadRequest,
    Reply,
    Request,
    Stream,
    Wire,
    allowed_host,
    error_reply,
    json_reply,
    read_request,
    text_reply,
)

log = logging.getLogger("ollamactl.sim")


class SimInstance:
    """One simulated server on its own loopback port. Public methods are safe from any thread."""

    def __init__(self, simulator: Simulator, config: SimConfig, host: str = HOST) -> None:
        self.state = InstanceState(config, simulator.upstream)
        self.host = host  # the address it listens on (127.0.0.1; another loopback address for multi-host tests)
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._simulator = simulator
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._in_flight = 0
        self._fault_changed = asyncio.Event()

    @property
    def config(self) -> SimConfig:
        return self.state.config

    @property
    def url(self) -> str:
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"SimInstance({self.config.name!r}, {self.url}, fault={self.config.fault!r})"

    def set_fault(self, fault: str | None) -> None:
        self.update(fault=fault)

    def update(self, **changes: Any) -> None:
        """Change SimConfig fields; returns once the change (listening, releasing hangs) is in effect."""
        self._simulator._call(self._apply(changes))

    # -- loop-side ------------------------------------------------------------------------------

    async def _start(self, port: int) -> None:
        await self._listen(port)
        if self.config.fault == "refuse":
            self._stop_listening(keep=None)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self.host, port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def _stop_listening(self, keep: asyncio.Task[Any] | None) -> None:
        """Close the listening socket and every connection but `keep` (the one asking, if any)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task, writer in list(self._connections.items()):
            if task is not keep:
                writer.transport.abort()
                task.cancel()

    async def _apply(self, changes: dict[str, Any], keep: asyncio.Task[Any] | None = None) -> None:
        previous = self.config.fault
        self.state.config = dataclasses.replace(self.config, **changes)
        if self.config.fault == previous:
            return
        self._fault_changed.set()
        self._fault_changed = asyncio.Event()
        if self.config.fault == "refuse":
            self._stop_listening(keep)
        elif previous == "refuse":
            await self._listen(self.port)

    async def _close(self) -> None:
        self._stop_listening(keep=None)
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._converse(reader, writer)
        except asyncio.CancelledError:
            pass  # stop() or "refuse": end quietly (3.10/3.11 log a cancelled connection task)
        finally:
            self._connections.pop(task, None)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._exchange(reader, writer):
                pass
        except BadRequest as exc:
            log.info("%s: %s", self.config.name, exc)
            wire = Wire(writer)
            with contextlib.suppress(OSError):
                await wire.reply(text_reply(400, "400 Bad Request"), head_only=False, keep_alive=False)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()
            # Awaiting also collects a lost connection's error, which asyncio would log otherwise.
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True when the connection stays open for another."""
        request = await read_request(reader, writer)
        if request is None:
            return False
        body, body_error = parse_body(request.raw_body)
        self.requests.append(RecordedRequest(request.method, request.path, request.headers, body))
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            control = _is_control(request.path)  # always answered promptly: it is how faults are cleared
            if self.config.fault == "hang" and not control:
                await self._fault_changed.wait()
                return False  # a hung request is never answered; its connection just closes
            wire = Wire(writer, self._drip_pause if self.config.fault == "drip" and not control else None)
            reply = await self._answer(request, body, body_error)
            keep_alive = request.keep_alive and not (isinstance(reply, Reply) and reply.close)
            status = reply.status if isinstance(reply, Reply) else 200
            log.info("%s %s %s -> %s", self.config.name, request.method, request.path, status)
            if isinstance(reply, Stream):
                await wire.stream(reply, keep_alive)
            else:
                await wire.reply(reply, request.method == "HEAD", keep_alive)
            return keep_alive
        finally:
            self._in_flight -= 1

    def _drip_pause(self) -> float | None:
        """The pause before each next byte of a reply while the fault is "drip"; None once it is not."""
        return self.config.drip_interval if self.config.fault == "drip" else None

    async def _answer(self, request: Request, body: Any, body_error: str | None) -> Reply | Stream:
        if not _is_control(request.path) and self.config.latency:
            await asyncio.sleep(self.config.latency)
        config = self.config
        if not allowed_host(request.headers.get("host", "")):
            return Reply(403)
        if _is_control(request.path):
            target = self._sibling(request.path[len(CONTROL_PATH) + 1:]) if request.path != CONTROL_PATH else self
            if target is None:
                return error_reply(404, f"no simulated instance on port {request.path[len(CONTROL_PATH) + 1:]!r} here")
            return await target._control(request, body, body_error)
        if config.fault == "garbage":
            return Reply(200, NOT_OLLAMA_PAGE, "text/html; charset=utf-8")
        is_api = request.path.startswith(("/api/", "/v1/"))
        if is_api and config.api_key and request.headers.get("authorization") != f"Bearer {config.api_key}":
            return error_reply(401, "unauthorized")
        routes = ROUTES.get(request.path) or OPENAI_ROUTES.get(request.path)
        if routes is None or (config.legacy and request.path in LEGACY_MISSING):
            return text_reply(404, "404 page not found")
        if request.method not in routes:
            return text_reply(405, "405 method not allowed")
        if is_api and config.fault == "http500":
            return error_reply(500, RUNNER_CRASHED)
        if config.fault == "busy503" and request.path in MODEL_PATHS:
            return error_reply(503, SERVER_BUSY)
        try:
            reply = await routes[request.method](self.state, request_body(request.method, body, body_error))
        except ApiError as exc:
            return error_reply(exc.status, str(exc))
        except Exception as exc:  # noqa: BLE001 - a simulator bug answers 500, never drops the connection
            log.exception("%s %s %s failed", config.name, request.method, request.path)
            return error_reply(500, f"simulator error: {type(exc).__name__}: {exc}")
        return _with_fault(reply, config.fault) if isinstance(reply, Stream) else reply

    def _sibling(self, port: str) -> SimInstance | None:
        """The instance of the same simulator listening (or refusing) on `port`."""
        return next((i for i in self._simulator.instances if str(i.port) == port), None)

    async def _control(self, request: Request, body: Any, body_error: str | None) -> Reply:
        """GET/POST /_sim/config: read or change this instance's SimConfig at run time; any instance
        also answers for a sibling at /_sim/config/PORT (how a "refuse"d one is brought back)."""
        if request.method == "POST":
            if body_error or not isinstance(body, dict):
                return error_reply(400, body_error or "expected a JSON object of SimConfig fields")
            try:
                await self._apply(body, keep=asyncio.current_task())
            except (TypeError, ValueError) as exc:
                return error_reply(400, str(exc))
        elif request.method != "GET":
            return text_reply(405, "405 method not allowed")
        shown = dataclasses.asdict(self.config)
        if shown["api_key"]:
            shown["api_key"] = "***"
        return json_reply(200, shown, close=self.config.fault == "refuse")


def _with_fault(stream: Stream, fault: str | None) -> Stream:
    """A stream as the "midstream" (an error line half-way) and "truncated" (cut half-way) faults send it."""
    half = stream.lines[: len(stream.lines) // 2]
    if fault == "midstream":
        return Stream(half, {"error": STREAM_BROKEN}, stream.interval, sse=stream.sse)
    if fault == "truncated":
        return Stream(half, None, stream.interval, sse=stream.sse)
    return stream


def _is_control(path: str) -> bool:
    return path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/")


class Simulator:
    """Runs all its instances on one asyncio loop in a background daemon thread (so it is usable
    from sync tests and from a CLI)."""

    def __init__(self) -> None:
        self.instances: list[SimInstance] = []
        self._loop = asyncio.new_event_loop()
        self._stopped = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ollamactl-simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def _call(self, coroutine: Any) -> Any:
        if self._stopped:
            coroutine.close()
            raise RuntimeError("the simulator is stopped")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def add(self, config: SimConfig | None = None, port: int = 0, host: str = HOST,
            **config_fields: Any) -> SimInstance:
        """Start one instance (listening before this returns) on `host`:`port` (0: any free port)."""
        config = dataclasses.replace(config or SimConfig(), **config_fields)
        instance = self._call(self._create(config, port, host))
        with self._lock:
            self.instances.append(instance)
        return instance

    def upstream(self, name: str) -> SimModel | None:
        """What a pull of `name` downloads: a catalogue model, or one some instance holds (at the
        current build's digest, whatever build that instance has); None when no such model exists."""
        name = normalise_model(name)
        held = next((m for i in self.instances for m in i.config.models if m.name == name), None)
        if held is None and name not in CATALOGUE:
            return None
        return upstream_model(name, embedding=None if held is None else held.embedding)

    async def _create(self, config: SimConfig, port: int, host: str) -> SimInstance:
        instance = SimInstance(self, config, host)  # built on the loop, which owns its Event
        await instance._start(port)
        return instance

    def stop(self) -> None:
        """Close every instance and connection (hung and dripping ones too) and end the loop."""
        with self._lock:
            if self._stopped:
                return
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
            self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    async def _shutdown(self) -> None:
        await asyncio.gather(*(instance._close() for instance in self.instances))

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_forever(
    count: int,
    base_port: int = 0,
    configs: list[SimConfig] | None = None,
    ready: Callable[[list[SimInstance]], None] | None = None,
    host: str = HOST,
) -> None:
    """Foreground runner for `ollamactl simulate`: start `count` instances on `host` at base_port, base_port+1,
    ... (0 = any free ports), call ready(instances) once listening, block until KeyboardInterrupt,
    then stop cleanly (no traceback). configs[i], when given, configures instance i; the rest get
    defaults named sim1, sim2, ..."""
    configs = configs or []
    with Simulator() as simulator:
        try:
            for index in range(count):
                config = configs[index] if index < len(configs) else SimConfig(name=f"sim{index + 1}")
                simulator.add(config, port=base_port + index if base_port else 0, host=host)
            if ready is not None:
                ready(simulator.instances)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

