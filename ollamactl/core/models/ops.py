"""Fleet model management: which instance holds and runs what, the plan that aligns them, and the
pull, delete, load and unload calls that carry it out. Never prints.

The pure half (no I/O): `plan` (instance x model -> ok / pull / update, against the fleet's
`inventory.reference_digest`), `drifted`, `model_kind`. The network half runs
every instance in parallel on one `httpx.AsyncClient` with the request rules of ollamactl.core.http (each key only to
its own instance, no redirects, no proxies from the environment) and bounded reads: every answer
has a size cap and a deadline; a pull stream is split on b"\\n" with a per-line cap, a short
connect timeout, a long wait for the first line and a generous one between lines, and it fails
(that instance only) on an error line or when it ends without `success`. While any call waits, the
server is asked whether it still answers (core/health/liveness.py): a hung one fails in seconds.

What the commands learn goes into the health cache at once (through the store): a pulled model
(by re-probing the instance), a removed one, and what load, unload and `ps` saw loaded, so `pick`
and the `warm` strategy act on it in the next call. `Survey` and the functions after it choose
each command's targets from a fresh probe of the fleet.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ollamactl.core import params, server_json
from ollamactl.core.errors import NoInstanceError, Said, UsageError
from ollamactl.core.health import liveness
from ollamactl.core.http import (
    ERROR_BODY_LIMIT,
    ModelNotFound,
    NotOllama,
    OllamaError,
    ServerError,
    Timeout,
    Timeouts,
    client_options,
    headers_for,
    network_error,
    seconds,
    status_error,
)
from ollamactl.core.models.inventory import held_models, reference_digest
from ollamactl.model_names import normalise_model

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Sequence
    from typing import Any
    from typing import NamedTuple as Record

    import httpx

    from ollamactl.core.health.probe import HealthResult
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import Store
else:
    from ollamactl.core.records import Record  # not dataclasses nor typing: `ps` imports this module

DEFAULT_PULL_CONCURRENCY = 3
BODY_LIMIT = 4 * 1024 * 1024  # /api/ps, /api/show and friends: far more than a real answer
LINE_LIMIT = 64 * 1024  # one pull progress line
BETWEEN_LINES_S = 300.0  # a pull may go quiet this long between two progress lines
PULL_DEADLINE_S = 6 * 3600.0  # one pull, start to `success`, at most
EMBEDDING_NAME_HINTS = ("embed", "minilm", "bge-", "bge:", "e5-", "gte-")

Held = dict[str, dict[str, "str | None"]]  # instance id -> {model: digest}


# ---------------------------------------------------------------------------------------------
# Inventory and plans (pure)


class Step(Record):
    """What one instance needs for one model: `ok`, `pull` (absent) or `update` (another digest)."""

    instance_id: str
    model: str
    action: str
    have: str | None  # the digest it holds (None: absent or not reported)
    want: str | None  # the reference digest (None: no agreement, or nobody holds it yet)


def plan(instances: Sequence[Instance], held: Held, models: Sequence[str], kinds: dict[str, str],
         source: str | None = None) -> list[Step]:
    """One step per model and per instance that answered (is in `held`) and serves the model's kind.

    The wanted digest is the `source` instance's, else the fleet's `reference_digest`; when the
    holders disagree with no majority, every holder is an `update` (a pull brings the current build).
    """
    steps = []
    for model in models:
        serving = [i for i in instances if i.id in held and i.serves(kinds.get(model, "chat"))]
        holders = [held[i.id][model] for i in serving if model in held[i.id]]
        want = (held.get(source) or {}).get(model) if source is not None else reference_digest(holders)
        split = len(set(holders) - {None}) > 1
        for instance in serving:
            if model not in held[instance.id]:
                steps.append(Step(instance.id, model, "pull", None, want))
                continue
            have = held[instance.id][model]
            differs = have is not None and (have != want if want is not None else split)
            steps.append(Step(instance.id, model, "update" if differs else "ok", have, want))
    return steps


def drifted(steps: Iterable[Step]) -> list[str]:
    """The models some step must change, in first-seen order."""
    return list(dict.fromkeys(s.model for s in steps if s.action != "ok"))


def guess_kind(name: str) -> str:
    """A model's kind from its name alone (used only when no instance can describe it)."""
    base = normalise_model(name).rsplit("/", 1)[-1].lower()
    return "embedding" if any(hint in base for hint in EMBEDDING_NAME_HINTS) else "chat"


def model_kind(show: Any, name: str) -> str:
    """The kind from an `/api/show` answer: its capabilities, else the family, else the name."""
    caps = show.get("capabilities") if isinstance(show, dict) else None
    if isinstance(caps, list) and caps:
        return "embedding" if "embedding" in caps and "completion" not in caps else "chat"
    details = show.get("details") if isinstance(show, dict) else None
    if isinstance(details, dict) and details.get("family") in ("bert", "nomic-bert"):
        return "embedding"
    return guess_kind(name)


# ---------------------------------------------------------------------------------------------
# The health cache


def _edit_entry(store: Store, instance: Instance, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to `instance`'s cached health entry, if there is one for its current url."""
    from ollamactl.core.state import schema as state

    def apply(data: dict[str, Any]) -> None:
        entry = data["health"].get(instance.id)
        if state.health_entry_ok(entry) and entry["url"] == instance.url:
            change(entry)

    store.update(apply)


def remember_loaded(store: Store, instance: Instance, model: str, loaded: bool) -> None:
    """Record that `model` was just loaded on (or unloaded from) `instance`."""
    wanted = normalise_model(model)

    def change(entry: dict[str, Any]) -> None:
        names = [n for n in entry.get("loaded") or () if normalise_model(n) != wanted]
        entry["loaded"] = names + [wanted] if loaded else names

    _edit_entry(store, instance, change)


def remember_running(store: Store, found: Sequence[tuple[Instance, Sequence[str]]]) -> None:
    """Record the loaded models `/api/ps` just listed on each instance: one write, and none when
    the cache already says so (a `ps` run again and again does not rewrite the state)."""
    from ollamactl.core.state import schema as state

    def changes(data: dict[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
        entries = ((data["health"].get(instance.id), instance.url, list(names)) for instance, names in found)
        return [(entry, names) for entry, url, names in entries
                if state.health_entry_ok(entry) and entry["url"] == url and entry.get("loaded") != names]

    def apply(data: dict[str, Any]) -> None:
        for entry, names in changes(data):
            entry["loaded"] = names

    if changes(store.read()):
        store.update(apply)


def forget(store: Store, instance: Instance, model: str) -> None:
    """Record that `model` is gone from `instance` (neither held nor loaded)."""
    wanted = normalise_model(model)

    def change(entry: dict[str, Any]) -> None:
        entry["models"] = [m for m in entry.get("models") or () if normalise_model(m["name"]) != wanted]
        entry["loaded"] = None if entry.get("loaded") is None else [
            n for n in entry["loaded"] if normalise_model(n) != wanted]

    _edit_entry(store, instance, change)


# ---------------------------------------------------------------------------------------------
# Requests


class Outcome(Record):
    """The result of one call on one instance: ok, or `error` in words (`absent`: it lacked the model)."""

    instance: Instance
    model: str | None = None
    ok: bool = False
    error: str | None = None
    absent: bool = False
    data: Any = None


def _client(timeouts: Timeouts, instances: Sequence[Instance], connections: int) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(**client_options(timeouts, instances, max(1, connections)))


async def _call(client: httpx.AsyncClient, instance: Instance, method: str, path: str, body: dict | None,
                timeouts: Timeouts, deadline: float) -> bytes:
    """One request and its whole answer (at most BODY_LIMIT bytes) within `deadline` seconds."""
    import asyncio

    import httpx

    async def exchange() -> bytes:
        content = None if body is None else json.dumps(body).encode()
        request = client.build_request(method, instance.url + path, content=content, headers=headers_for(instance))
        response = await client.send(request, stream=True)
        try:
            received = b""
            async for chunk in response.aiter_raw():
                received += chunk
                if len(received) > BODY_LIMIT:
                    if response.status_code != 200:
                        break
                    raise NotOllama(f"not an Ollama server (the answer to {path} is larger than"
                                    f" {BODY_LIMIT // 1024 // 1024} MiB)", instance)
        finally:
            await response.aclose()
        if response.status_code != 200:
            raise status_error(response.status_code, received[:ERROR_BODY_LIMIT], response.headers.get("location"),
                               response.reason_phrase, instance)
        return received

    try:
        return await asyncio.wait_for(liveness.while_alive(exchange(), instance, timeouts), deadline)
    except asyncio.TimeoutError:
        raise Timeout(f"no complete answer within {seconds(deadline)} s", instance) from None
    except httpx.HTTPError as exc:
        raise network_error(exc, instance, timeouts) from None


def _json(content: bytes, instance: Instance) -> Any:
    try:
        return server_json.loads(content)
    except ValueError as error:
        raise NotOllama(server_json.not_ollama(error), instance) from None


async def _gather(instances: Sequence[Instance], timeouts: Timeouts, one: Callable[..., Any],
                  connections: int | None = None) -> list[Any]:
    import asyncio

    async with _client(timeouts, instances, connections or len(instances)) as client:
        return list(await asyncio.gather(*(one(client, i) for i in instances)))


def running(store: Store, instances: Sequence[Instance], deadline: float, concurrency: int) -> list[Outcome]:
    """`/api/ps` of every instance, each within `deadline` s: Outcome.data is the list of
    loaded-model objects, or None when the server has no `/api/ps` (older than 0.1.38). Asked over
    the health probes' client (a small GET: no httpx, no TLS context for http instances); the
    answers also refresh the cached loaded lists, in one write."""
    from ollamactl.core.health import probe as health

    answers = health.loaded_models(instances, deadline, concurrency)
    outcomes = [Outcome(instance, error=error) if error else Outcome(instance, ok=True, data=models)
                for instance, (models, error) in zip(instances, answers, strict=True)]
    remember_running(store, [(o.instance, [m["name"] for m in o.data]) for o in outcomes if o.data is not None])
    return outcomes


def kinds(models: Sequence[str], holders: dict[str, list[Instance]], timeouts: Timeouts,
          deadline: float) -> dict[str, str]:
    """Each model's kind, from `/api/show` on an instance that holds it (the name alone when none
    can say)."""
    import asyncio

    async def one(client: httpx.AsyncClient, model: str) -> str:
        for instance in holders.get(model, ())[:2]:
            try:
                content = await _call(client, instance, "POST", "/api/show", {"model": model}, timeouts, deadline)
            except OllamaError:
                continue
            return model_kind(_json_or_none(content), model)
        return guess_kind(model)

    async def every() -> list[str]:
        instances = list({i.id: i for group in holders.values() for i in group}.values())
        async with _client(timeouts, instances, 8) as client:
            return list(await asyncio.gather(*(one(client, m) for m in models)))

    return dict(zip(models, asyncio.run(every()) if models else [], strict=True))


def _json_or_none(content: bytes) -> Any:
    try:
        return server_json.loads(content)
    except ValueError:
        return None


def delete(store: Store, instances: Sequence[Instance], model: str, timeouts: Timeouts,
           deadline: float) -> list[Outcome]:
    """`DELETE /api/delete` on every instance; a 404 "not found" is `absent`, not an error."""
    import asyncio

    async def one(client: httpx.AsyncClient, instance: Instance) -> Outcome:
        try:
            await _call(client, instance, "DELETE", "/api/delete", {"model": model}, timeouts, deadline)
        except ModelNotFound:
            forget(store, instance, model)
            return Outcome(instance, model, absent=True, error="not on this instance")
        except OllamaError as error:
            return Outcome(instance, model, error=error.reason)
        forget(store, instance, model)
        return Outcome(instance, model, ok=True)

    return asyncio.run(_gather(instances, timeouts, one))


def warm(store: Store, instances: Sequence[Instance], model: str, kind: str, load: bool, timeouts: Timeouts,
         deadline: float, keep_alive: int | float | str | None = None) -> list[Outcome]:
    """Load (for `keep_alive`, else the server's default) or unload `model` everywhere: an empty
    generate, or an empty embed for embedding models, per the Ollama API. The cache's loaded lists
    follow at once."""
    import asyncio

    body: dict[str, Any] = {"model": model, "input": []} if kind == "embedding" else {"model": model, "stream": False}
    path = "/api/embed" if kind == "embedding" else "/api/generate"
    if not load:
        body["keep_alive"] = 0
    elif keep_alive is not None:
        body["keep_alive"] = keep_alive

    async def one(client: httpx.AsyncClient, instance: Instance) -> Outcome:
        try:
            await _call(client, instance, "POST", path, body, timeouts, deadline)
        except ModelNotFound:
            return Outcome(instance, model, error="not on this instance", absent=True)
        except OllamaError as error:
            return Outcome(instance, model, error=error.reason)
        remember_loaded(store, instance, model, load)
        return Outcome(instance, model, ok=True)

    return asyncio.run(_gather(instances, timeouts, one))


# ---------------------------------------------------------------------------------------------
# Pulls


class PullProgress:
    """The live state of one pull (instance x model), as the progress view shows it (changed in place)."""

    __slots__ = ("instance", "model", "state", "status", "completed", "total", "error", "layers", "layer_total")

    def __init__(self, instance: Instance, model: str) -> None:
        self.instance = instance
        self.model = model
        self.state = "waiting"  # waiting | running | done | failed
        self.status = "waiting"  # the server's last status text
        self.completed = 0  # bytes, summed over the layers seen so far
        self.total = 0
        self.error: str | None = None
        self.layers: dict[str, tuple[int, int]] = {}  # digest -> (completed, total)
        self.layer_total = 0  # the size of the layer the last line was about (0: not a layer line)

    @property
    def key(self) -> tuple[str, str]:
        return self.instance.id, self.model


OnProgress = Callable[[PullProgress], None]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def apply_line(progress: PullProgress, obj: Any) -> bool:
    """Fold one progress line into `progress`; True once it says `success`. Raises on an error line."""
    if not isinstance(obj, dict):
        raise NotOllama("not an Ollama server (a progress line is not a JSON object)", progress.instance)
    if "error" in obj:
        raise ServerError(f"the server reported: {str(obj['error'])[:300]}", progress.instance)
    status = obj.get("status")
    if isinstance(status, str) and status:
        progress.status = status[:200]
    digest = obj.get("digest")
    progress.layer_total = 0
    if isinstance(digest, str) and digest and "total" in obj:
        if digest not in progress.layers and len(progress.layers) >= 1000:
            raise NotOllama("not an Ollama server (a pull of more than 1000 layers)", progress.instance)
        progress.layers[digest] = (_count(obj.get("completed")), _count(obj.get("total")))
        progress.layer_total = progress.layers[digest][1]
        progress.completed = sum(done for done, _ in progress.layers.values())
        progress.total = sum(size for _, size in progress.layers.values())
    return status == "success"


async def _stream_pull(client: httpx.AsyncClient, progress: PullProgress, timeouts: Timeouts, between: float,
                       on_progress: OnProgress) -> None:
    """One pull, raising OllamaError on any failure; `progress` follows every line."""
    import asyncio

    instance = progress.instance
    request = client.build_request("POST", instance.url + "/api/pull", content=json.dumps(
        {"model": progress.model, "stream": True}).encode(), headers=headers_for(instance))
    try:
        response = await asyncio.wait_for(client.send(request, stream=True), timeouts.first_byte)
    except asyncio.TimeoutError:
        raise Timeout(f"no answer within the first-byte timeout ({seconds(timeouts.first_byte)} s)",
                      instance) from None
    try:
        if response.status_code != 200:
            content = b""
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) >= ERROR_BODY_LIMIT:
                    break
            raise status_error(response.status_code, content[:ERROR_BODY_LIMIT], response.headers.get("location"),
                               response.reason_phrase, instance)
        chunks = response.aiter_raw().__aiter__()
        buffer = b""
        succeeded = False
        wait = timeouts.first_byte
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), wait)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise Timeout(f"no progress line for {seconds(wait)} s", instance) from None
            *lines, buffer = (buffer + chunk).split(b"\n")
            if len(buffer) > LINE_LIMIT:
                raise NotOllama(f"not an Ollama server (a progress line longer than {LINE_LIMIT // 1024} KiB)",
                                instance)
            for line in lines:
                if line.strip():
                    wait = between
                    succeeded = apply_line(progress, _line(line, instance)) or succeeded
                    on_progress(progress)
        if buffer.strip():
            succeeded = apply_line(progress, _line(buffer, instance)) or succeeded
            on_progress(progress)
        if not succeeded:
            raise ServerError("the stream ended without `success` (cut short)", instance)
    finally:
        await response.aclose()


def _line(line: bytes, instance: Instance) -> Any:
    try:
        return server_json.loads(line)
    except ValueError as error:
        raise NotOllama(server_json.not_ollama(error, "a progress line is not JSON"), instance) from None


def pull(store: Store, jobs: Sequence[tuple[Instance, str]], timeouts: Timeouts, *,
         concurrency: int = DEFAULT_PULL_CONCURRENCY, on_progress: OnProgress | None = None,
         between: float = BETWEEN_LINES_S, deadline: float = PULL_DEADLINE_S,
         probe_timeout: float = 5.0) -> list[Outcome]:
    """Pull each (instance, model) job, `concurrency` at a time; one failure never stops the others.

    Each success re-probes its instance and saves the result, so the cache lists the new model
    (with its digest) before this returns. KeyboardInterrupt stops every pull (connections closed).
    """
    import asyncio

    import httpx

    from ollamactl.core.health import probe as health

    notify = on_progress or (lambda progress: None)
    rows = [PullProgress(instance, normalise_model(model)) for instance, model in jobs]

    async def one(client: httpx.AsyncClient, semaphore: asyncio.Semaphore, progress: PullProgress) -> Outcome:
        async with semaphore:
            progress.state, progress.status = "running", "connecting"
            notify(progress)
            try:
                await asyncio.wait_for(liveness.while_alive(_stream_pull(client, progress, timeouts, between, notify),
                                                            progress.instance, timeouts), deadline)
            except asyncio.TimeoutError:
                error: OllamaError | None = Timeout(f"not finished within {seconds(deadline)} s", progress.instance)
            except httpx.HTTPError as exc:
                error = network_error(exc, progress.instance, timeouts)
            except OllamaError as exc:
                error = exc
            else:
                error = None
        if error is not None:
            progress.state, progress.error = "failed", error.reason
            notify(progress)
            return Outcome(progress.instance, progress.model, error=error.reason)
        learned = await health.check_async([progress.instance], probe_timeout)
        health.save(store, learned)
        progress.state = "done"
        notify(progress)
        return Outcome(progress.instance, progress.model, ok=True)

    async def every() -> list[Outcome]:
        semaphore = asyncio.Semaphore(max(1, concurrency))
        instances = [instance for instance, _ in jobs]
        async with _client(timeouts, instances, concurrency) as client:
            return list(await asyncio.gather(*(one(client, semaphore, row) for row in rows)))

    for row in rows:
        notify(row)
    return asyncio.run(every()) if rows else []


# ---------------------------------------------------------------------------------------------
# What each command works on: the fleet probed now, and the targets chosen from what it holds


class Survey:
    """Instances a model command considers, with their health results and what they hold (`held`,
    healthy ones only), the timeouts of the registry's settings, and the kinds of models. Every
    method takes model names as people type them (`llama3.2` is `llama3.2:latest`)."""

    def __init__(self, instances: Sequence[Instance], results: dict[str, HealthResult], timeouts: Timeouts,
                 probe_timeout: float, skipped: dict[str, str] | None = None):
        self.instances = list(instances)
        self.results = results
        self.skipped = skipped or {}  # id -> why an instance known to be down was not asked (Fleet.answering)
        self.held = held_models(results[i.id] for i in self.instances if i.id in results)
        self.timeouts = timeouts
        self.probe_timeout = probe_timeout

    def holders(self, model: str) -> list[Instance]:
        model = params.model_key(model)  # a look-up: `models --diff` asks about every name the servers hold
        return [i for i in self.instances if model in self.held.get(i.id, {})]

    def kinds(self, models: Sequence[str]) -> dict[str, str]:
        """Each model's kind (chat or embedding), by its normalised name."""
        models = params.models(models, lookup=True)
        return kinds(models, {m: self.holders(m) for m in models}, self.timeouts, self.probe_timeout)

    def pull_targets(self, model: str, everywhere: bool) -> list[Instance]:
        """Where `pull MODEL` goes: the healthy instances of a fitting type that lack it or hold another
        build (every fitting one with `everywhere`); empty when it is current everywhere."""
        if not self.held:
            raise NoInstanceError("no instance is healthy", "see `ollamactl health`")
        model = params.model(model)
        kind = self.kinds([model])[model]
        if everywhere:
            return [i for i in self.instances if i.id in self.held and i.serves(kind)]
        wanted = {s.instance_id for s in plan(self.instances, self.held, [model], {model: kind}) if s.action != "ok"}
        return [i for i in self.instances if i.id in wanted]

    def sync_plan(self, models: Sequence[str], source: Instance | None) -> list[Step]:
        """`sync`'s plan: the given models, else every model on `source`, else every model in the fleet,
        for every enabled instance of a fitting type (at `source`'s digests when given)."""
        wanted = params.models(models)
        if source is not None:
            if source.id not in self.held:
                raise NoInstanceError(Said("{source} {id} is unhealthy; its models are unknown", id=source.id),
                                      f"see `ollamactl health {source.id}`")
            missing = [m for m in wanted if m not in self.held[source.id]]
            if missing:
                raise UsageError(Said("{missing} not on {source} {id}", missing=", ".join(missing), id=source.id),
                                 "pull it there first")
            wanted = wanted or sorted(self.held[source.id])
        wanted = wanted or sorted({m for names in self.held.values() for m in names})
        targets = [i for i in self.instances if source is None or i.id != source.id or i.enabled]
        return plan(targets, self.held, wanted, self.kinds(wanted), source=source.id if source else None)

    def removal(self, model: str, targets: Sequence[Instance], force: bool) -> tuple[list[Instance],
                                                                                              list[Outcome]]:
        """(the targets holding `model`, to delete it from; outcomes for the others: absent or unreachable).

        A UsageError when that would remove the last copy in the surveyed fleet and not `force`.
        """
        model = params.model(model)
        chosen = {i.id for i in targets}
        holding = [i for i in targets if model in self.held.get(i.id, {})]
        keepers = [i for i in self.holders(model) if i.id not in chosen]
        if holding and not keepers and not force:
            who = ", ".join(i.id for i in holding)
            raise UsageError(f"{who} hold{'s' if len(holding) == 1 else ''} the last copy of {model} in the fleet",
                             Said("pass {force=True} to remove it anyway"))
        others = [Outcome(i, model, error=self.skipped[i.id]) if i.id not in self.results
                  else Outcome(i, model, absent=True, error="not on this instance") if self.results[i.id].healthy
                  else Outcome(i, model, error=self.results[i.id].error) for i in targets if i not in holding]
        return holding, others

    def drift(self) -> tuple[dict[str, str], list[Step]]:
        """`models --diff`: each held model's kind, and the plan's steps for the models not on every
        instance of a fitting type, or not at one digest."""
        models = sorted({m for names in self.held.values() for m in names})
        kinds = self.kinds(models)
        steps = plan(self.instances, self.held, models, kinds)
        wrong = set(drifted(steps))
        return kinds, [s for s in steps if s.model in wrong]

    def loaded_on(self, model: str) -> list[Instance]:
        """The holders of `model` where it is loaded (or where the server cannot tell: no /api/ps)."""
        model = params.model(model)

        def loaded(instance: Instance) -> bool:
            names = self.results[instance.id].loaded
            return names is None or model in {normalise_model(n) for n in names}

        return [i for i in self.holders(model) if loaded(i)]
