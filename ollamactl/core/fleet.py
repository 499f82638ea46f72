"""`Fleet`: the one front door to everything ollamactl does, as a library.

    from ollamactl import Fleet

    fleet = Fleet()                          # the user's registry and state (env, then XDG dirs)
    fleet.add("gpu1")                        # http://gpu1 on Ollama's default port
    fleet.check()                            # probe every enabled instance, update the cache
    [url] = [i.url for i in fleet.pick(model="llama3.2")]
    for text in fleet.generate("llama3.2", "Why is the sky blue?"):
        print(text, end="")

Locations are resolved once, here (`config`/`state_dir`, else `$OLLAMACTL_CONFIG`,
`$OLLAMACTL_STATE_DIR`, else the user's dirs; `OLLAMA_HOST` names the default instance), and so is
the state store (`$OLLAMACTL_STORE`, else `[settings] store`: the state file, or Redis shared by a
team); the modules behind this class never read the environment for them. Nothing here prints: warnings go
to the `warn` callback given (or are kept in `warnings`), errors are OllamactlError subclasses
whose `exit_code` the CLI uses. httpx, asyncio and tomlkit are imported only by the methods that
need them, so a `pick` from the cache stays cheap.
"""

from __future__ import annotations

import os

from ollamactl.core import params, paths, settings
from ollamactl.core.errors import InvalidValue, NoInstanceError, OllamactlError, Said, UsageError
from ollamactl.core.health import cache as health_cache
from ollamactl.core.registry import instances as registry
from ollamactl.core.registry.instances import Instance, Registry
from ollamactl.core.routing import router as routing
from ollamactl.core.state.store import FileStore

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
    from typing import Any

    from typing_extensions import Unpack  # typing's own from Python 3.11

    from ollamactl.core.discover import Found
    from ollamactl.core.export.common import Exported
    from ollamactl.core.health.probe import HealthResult, OnResult
    from ollamactl.core.metrics.report import InstanceMetrics
    from ollamactl.core.metrics.speed import Measured
    from ollamactl.core.models.ops import OnProgress, Outcome, Survey
    from ollamactl.core.paths import Locations
    from ollamactl.core.proxy.embed import EmbedFields, EmbedRequest, EmbedSummary, Write
    from ollamactl.core.proxy.generate import Completion, Emit, Flush, GenerateFields, GenerateRequest, Log
    from ollamactl.core.registry.edits import NewInstanceFields
    from ollamactl.core.routing.leases import Lease, Notice, Take
    from ollamactl.core.state.store import Store

    Warn = Callable[[str], None]


class Fleet:
    """A registry of Ollama instances and the shared state that routes work to them."""

    def __init__(self, config: str | os.PathLike[str] | None = None, state_dir: str | os.PathLike[str] | None = None,
                 *, warn: Warn | None = None, store: Store | None = None, refresh_at_exit: bool = False):
        """`refresh_at_exit`: a background refresh asked for by a stale pick starts when this process
        ends instead of at once (for commands that answer and end: see core/health/background)."""
        self._registry_file, self._state_dir = paths.where(config, state_dir)  # strings: no pathlib for pick
        self._locations: Locations | None = None
        self._last_registry: Registry | None = None  # what warn redacts with: the registry being worked on
        self.warnings: list[str] = []
        self._said: set[str] = set()  # each warning is given once per Fleet, however often the work meets it
        self._warn = warn
        self._store = store
        self._own_store = store is None  # opened here by the rules below (a pick may use its memo)
        self._store_env = os.environ.get("OLLAMACTL_STORE", "").strip()
        # A background refresh (core/health/background.py) opens the same store by the same rules: not for a given one.
        self._revalidate = self._start_background_refresh if store is None else None
        self._refresh_at_exit = refresh_at_exit
        self._ollama_host = os.environ.get("OLLAMA_HOST")

    @property
    def locations(self) -> Locations:
        """Where this fleet's files are, as Paths."""
        if self._locations is None:
            self._locations = paths.Locations.resolve(self._registry_file, self._state_dir)
        return self._locations

    @property
    def store(self) -> Store:
        """Where the state is kept: `$OLLAMACTL_STORE`, else `[settings] store` (file or redis://...);
        opened on first use, so commands that never touch the state never read it."""
        return self._store_for(None)

    def _store_for(self, reg: Registry | None) -> Store:
        """The store, opened with `reg` (the registry just read) when it has to be opened now."""
        if self._store is None:
            self._store = self._open_store(reg)
        return self._store

    def _open_store(self, reg: Registry | None) -> Store:
        local = FileStore(self._state_dir, self.warn)
        where = self._store_env
        if where:
            problem = settings.store_problem(where)
            if problem:
                raise UsageError(f"OLLAMACTL_STORE {problem}", "unset it, or set it to file or redis://host:6379/0")
        else:
            try:
                where = str((reg or self.registry()).setting("store"))
            except OllamactlError:  # the command that reads the registry reports it
                where = "file"
        if where == "file":
            return local
        from ollamactl.core.state.redis_store import RedisStore

        return RedisStore(where, fallback=local, warn=self.warn)

    def warn(self, message: str) -> None:
        """Pass a warning to the caller's callback, or keep it in `warnings`, once (a command that reads
        the registry twice, or a waiter that chooses many times, says each thing once); a configured key standing
        whole in it (a server's words quoted in a warning) is replaced by `***` first. The keys are
        those of the registry this fleet read last (the one whose instances were asked), so a warning
        does not read the registry again; read now when none was."""
        from ollamactl.core.registry.keys import keys_of, redact

        try:
            reg = self._last_registry if self._last_registry is not None else self.registry()
            message = redact(message, keys_of(reg.instances))
        except OllamactlError:  # an unreadable registry has no keys to hide
            pass
        if message in self._said:
            return
        self._said.add(message)
        if self._warn is not None:
            self._warn(message)
        else:
            self.warnings.append(message)

    # -- the registry ---------------------------------------------------------------------------

    def registry(self) -> Registry:
        """The registry as it is on disk now (validated; a missing file is an empty registry), from
        its snapshot in the state dir when the file has not changed since (core/registry/snapshot)."""
        from ollamactl.core.registry import snapshot as registry_snapshot

        self._last_registry = registry_snapshot.load(self._registry_file, self._state_dir)
        return self._last_registry

    def instances(self) -> tuple[Instance, ...]:
        return self.registry().instances

    def find(self, ref: str) -> Instance:
        """The instance whose id, else name, is `ref` (a UsageError with close matches otherwise)."""
        return self.registry().find(ref)

    def registered(self, url: str) -> Instance | None:
        """The registered instance that is the server at `url` under any spelling of it (localhost,
        127.0.0.1, [::1], ...), or None."""
        from ollamactl.core.registry.urls import normalise_url, server_key

        key = server_key(normalise_url(params.text("url", url)))
        return next((i for i in self.instances() if server_key(i.url) == key), None)

    @property
    def default_instance(self) -> Instance:
        """The instance used when nothing is registered: OLLAMA_HOST, else registry.DEFAULT_URL."""
        return registry.default_instance(self._ollama_host)

    def add(self, url: str, *, check: bool = False, **fields: Unpack[NewInstanceFields]) -> Instance:
        """Register an instance (the URL is normalised, a pasted API path such as /api or /v1 dropped
        with a warning; the id is derived from it unless given).

        `fields` (registry.edits.NewInstance): name, id, type (chat, embedding, both), weight,
        enabled, api_key_env or api_key, priority (its tier: lower is preferred; "backup": below
        every other), max_inflight (leases at once; None: unlimited). `check`: probe it first and
        refuse (OllamactlError, nothing written) unless it answers like Ollama."""
        from ollamactl.core.registry import edits as registry_ops

        new = registry_ops.NewInstance(**params.fields(registry_ops.NewInstanceFields, fields))
        url, note = self._base_url(url)
        if params.flag("check", check):
            self._check_answers(url, new.api_key_env, new.api_key)
        added = registry_ops.add(self.locations, url, new)
        if note:
            self.warn(note)
        return added

    @staticmethod
    def _base_url(given: str) -> tuple[str, str | None]:
        """`given` normalised, without a pasted API path (`/api`, `/api/generate`, `/v1`: see
        urls.without_api_path), and the warning to give once it is stored (None: nothing dropped)."""
        from ollamactl.core.registry.urls import normalise_url, without_api_path

        url, dropped = without_api_path(normalise_url(params.text("url", given)))
        if dropped is None:
            return url, None
        return url, (f"dropped {dropped} from {given.strip()}: ollamactl adds the API path to every request itself"
                     f" (requests would have gone to {dropped}/api/...); stored as {url}")

    def _check_answers(self, url: str, api_key_env: str | None, api_key: str | None) -> None:
        from ollamactl.core.health import probe as health

        candidate = Instance(id="candidate", name="candidate", url=url, api_key_env=api_key_env, api_key=api_key)
        result = health.check([candidate], float(self.registry().setting("timeout")))[0]
        if not result.healthy:
            raise OllamactlError(f"{candidate.url} does not answer like Ollama ({result.error}); nothing registered",
                                 Said("check the URL and that the server runs (without {check=True} it is"
                                      " registered anyway)"))

    def update(self, ref: str, **changes: Any) -> Instance:
        """Change fields of one instance: url, name, type, weight, enabled, priority, max_inflight
        (None: unlimited), api_key_env, api_key (api_key_env=None / api_key=None drop the key settings)."""
        from ollamactl.core.registry import edits as registry_ops

        params.fields(registry_ops.Changes, changes, "cannot be changed", "change")
        note = None
        if "url" in changes:
            changes["url"], note = self._base_url(changes["url"])
        updated = registry_ops.update(self.locations, ref, registry_ops.Changes(**changes))
        if note:
            self.warn(note)
        return updated

    def enable(self, *refs: str) -> list[Instance]:
        from ollamactl.core.registry import edits as registry_ops

        return registry_ops.set_enabled(self.locations, params.refs("refs", refs), True)

    def disable(self, *refs: str) -> list[Instance]:
        from ollamactl.core.registry import edits as registry_ops

        return registry_ops.set_enabled(self.locations, params.refs("refs", refs), False)

    def remove(self, *refs: str) -> list[Instance]:
        from ollamactl.core.registry import edits as registry_ops

        return registry_ops.remove(self.locations, params.refs("refs", refs))

    def discover(self, targets: Sequence[str] = (), *, ports: Sequence[int] = (), timeout: float | None = None,
                 connect_timeout: float | None = None, concurrency: int | None = None, yes: bool = False,
                 on_found: Callable[[Found], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> list[Found]:
        """The Ollama servers at `targets` (host names, addresses, HOST:PORT, URLs, CIDR blocks;
        none: localhost and OLLAMA_HOST's host) on `ports` (default: Ollama's), each marked with the id
        it is registered under, if any. A scan of more than a /16 needs `yes`. `on_found` sees each
        server as it is found (what an interrupted scan found stays with the caller), `on_progress`
        (addresses tried, addresses in all) as the scan goes. Registers nothing: see `add_found`."""
        import asyncio

        from ollamactl.core import discover
        from ollamactl.core.registry.urls import server_key

        timeout = settings.checked("timeout", discover.DEFAULT_TIMEOUT if timeout is None else timeout)
        connect_timeout = settings.checked(
            "connect_timeout", discover.DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout)
        concurrency = settings.checked(
            "concurrency", discover.DEFAULT_CONCURRENCY if concurrency is None else concurrency)
        if isinstance(targets, str):
            raise UsageError(f"targets {targets!r} is one string", "pass a list of targets, e.g. [\"10.0.0.0/24\"]")
        parsed = [discover.parse_target(text) for text in targets] or self._default_targets()
        plan = discover.Plan(parsed, list(ports))
        plan.check_size(yes)
        known = {server_key(i.url): i.id for i in self.instances()}
        found: list[Found] = []
        seen: set[str] = set()

        def keep(result: HealthResult) -> None:
            key = server_key(result.url)
            if key in seen:  # one server reached under two addresses (bound to 0.0.0.0, say)
                return
            seen.add(key)
            found.append(discover.found_from(result, known.get(key)))
            if on_found is not None:
                on_found(found[-1])

        asyncio.run(discover.scan(plan, timeout=timeout, connect_timeout=connect_timeout, concurrency=concurrency,
                                  on_found=keep, on_progress=on_progress))
        return sorted(found, key=discover.url_order)

    def _default_targets(self) -> list[Any]:
        """localhost, and the host OLLAMA_HOST names (a bad OLLAMA_HOST is said and left out)."""
        from ollamactl.core import discover

        targets = [discover.parse_target("localhost")]
        if self._ollama_host:
            try:
                targets.append(discover.parse_target(self._ollama_host))
            except UsageError as bad:
                self.warn(f"OLLAMA_HOST is left out of the scan: {bad.headline()}")
        return targets

    def metrics(self, *refs: str) -> list[InstanceMetrics]:
        """What each registered instance (or each named one) served: requests by outcome, first-token
        times, generation speed per model, embedding inputs, requests per minute; with the leases it
        holds now and its last health check. Counted by every process's run/embed/exec in the store."""
        import time

        from ollamactl.core.metrics import report as metrics_report
        from ollamactl.core.registry.edits import resolve_all

        reg = self.registry()
        instances = resolve_all(reg, list(refs)) if refs else list(reg.instances)
        state = self.store.read()
        held = self.store.inflight([i.id for i in instances], state)
        now = time.time()
        return [metrics_report.build(i, state["metrics"].get(i.id), state["health"].get(i.id), held[i.id], now)
                for i in instances]

    def bench(self, model: str | None = None, *, prompt: str | None = None, tokens: int | None = None,
              repeat: int = 1, on_result: Callable[[Measured], None] | None = None) -> list[Measured]:
        """Measure every healthy enabled instance that holds `model` (default: the chat model most
        of them hold), all at once, `repeat` requests each: tokens/s from Ollama's own counts, time to
        first token, cold or not. Fastest first. Each request is recorded like a run's (metrics)."""
        import threading

        from ollamactl.core.metrics import speed
        from ollamactl.core.models.inventory import held_models
        from ollamactl.core.proxy.generate import GenerateRequest
        from ollamactl.model_names import normalise_model

        settings.checked("count", repeat, "repeat")
        tokens = settings.checked("count", speed.DEFAULT_TOKENS if tokens is None else tokens, "tokens")
        if model is not None:
            params.model(model)
        if prompt is not None and not params.text("prompt", prompt).strip():
            raise InvalidValue(("prompt",), "is empty", "leave it out for the standard prompt")
        health = self.health()
        instances = self._targets()
        holders = held_models(health[i.id] for i in instances if i.serves("chat"))  # id -> {model: digest}
        model = normalise_model(model) if model else _most_held(holders)
        if model is None:
            raise NoInstanceError("no healthy chat instance holds a model to measure",
                                  "check `ollamactl health`, or pull one with `ollamactl pull MODEL`")
        chosen = [i for i in instances if model in holders.get(i.id, ())]
        if not chosen:
            raise NoInstanceError(f"no healthy chat instance holds {model}",
                                  f"pull it first (`ollamactl pull {model}`), or name another model")
        results: list[Measured] = []

        def measure(instance: Instance) -> None:
            request = GenerateRequest(model, prompt or speed.DEFAULT_PROMPT, options={"num_predict": tokens},
                                      instance=instance.id, tries=1)
            runs: list[speed.Run] = []
            error = None
            for _ in range(repeat):
                try:
                    done = self.stream(request, _shown_text)
                except OllamactlError as failed:
                    error = failed.details[-1] if failed.details else failed.headline()  # the one try's words
                    break
                runs.append(speed.run_of(done.final, done.first_output_s))
            results.append(speed.summary(instance, model, runs, error))
            if on_result is not None:
                on_result(results[-1])

        threads = [threading.Thread(target=measure, args=(i,), name="ollamactl-bench", daemon=True) for i in chosen]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return speed.ranked(results)

    def reset_metrics(self) -> None:
        """Forget every instance's counters (the health cache, breaker and leases stay)."""
        self.store.update(lambda data: data["metrics"].clear())

    def add_found(self, found: Iterable[Found]) -> list[Instance]:
        """Register each server of `found` (from `discover`) that is not registered yet, named from
        its host name (reverse DNS, else its address; `-PORT` for a port other than Ollama's default). A server
        registered meanwhile (by another process, or twice in `found`) is skipped."""
        from ollamactl.core import discover
        from ollamactl.core.registry import lookup
        from ollamactl.core.registry.urls import host_of, server_key

        fresh = [item for item in found if item.registered is None]
        names = lookup.host_names([host_of(item.url) for item in fresh])
        added: list[Instance] = []
        for item in fresh:
            instances = self.instances()
            if any(server_key(i.url) == server_key(item.url) for i in instances):
                continue
            taken = {ref for i in instances for ref in (i.id, i.name)}
            added.append(self.add(item.url, name=discover.suggest_name(item.url, taken, names.get)))
        return added

    def targets(self, refs: Sequence[str] = (), include_disabled: bool = False) -> list[Instance]:
        """The instances a fleet-wide command works on: the named ones (even disabled), else the
        enabled ones (all with `include_disabled`), else, with nothing registered, the default."""
        return self._targets(refs, include_disabled, offer=True)

    def _targets(self, refs: Sequence[str] = (), include_disabled: bool = False, offer: bool = False,
                 reg: Registry | None = None) -> list[Instance]:
        """`targets`, from `reg` when the caller has just read it; when every instance is disabled, the
        error offers `include_disabled` only to a caller that takes it (`offer`): refresh(), health()
        ... work on the enabled ones alone."""
        reg = self.registry() if reg is None else reg
        if refs:
            from ollamactl.core.registry.edits import resolve_all

            if not reg.instances and all(ref == "default" for ref in refs):
                return [self.default_instance]
            return resolve_all(reg, list(refs))
        if not reg.instances:
            default = self.default_instance
            self.warn(routing.no_registry_warning(default))
            return [default]
        chosen = [i for i in reg.instances if include_disabled or i.enabled]
        if not chosen:
            raise NoInstanceError(f"all {len(reg.instances)} registered instances are disabled",
                                  Said("pass {include_disabled=True} to include them anyway, or"
                                       " `ollamactl enable ID_OR_NAME`") if offer
                                  else "enable one with `ollamactl enable ID_OR_NAME`")
        return chosen

    # -- health ---------------------------------------------------------------------------------

    @staticmethod
    def start_deferred_refreshes() -> None:
        """Start the background refreshes that fleets made with `refresh_at_exit` put off: they start
        at interpreter exit anyway; a program that ends with `os._exit` calls this first."""
        from ollamactl.core.health import background

        background.start_deferred()

    def _start_background_refresh(self) -> bool:
        from ollamactl.core.health import background

        return background.start(self._registry_file, self._state_dir, at_exit=self._refresh_at_exit)

    def check(self, *refs: str, timeout: float | None = None, include_disabled: bool = False,
              on_result: OnResult | None = None) -> list[HealthResult]:
        """Probe the named instances (default: every enabled one) now, in parallel; the results are
        cached and returned in the same order."""
        return self.probe(self.targets(refs, include_disabled), timeout=timeout, on_result=on_result)

    def probe(self, instances: Sequence[Instance], *, timeout: float | None = None,
              on_result: OnResult | None = None, save_each: bool = False) -> list[HealthResult]:
        """Probe exactly `instances` now and cache the results: at the end, or with `save_each` as
        they arrive (in batches), so one hung instance does not hold back the others' news."""
        from ollamactl.core.health import probe as health
        from ollamactl.core.registry.keys import keys_of

        if timeout is not None:
            settings.checked("timeout", timeout)
        reg = self.registry()
        results = health.check(instances, timeout if timeout is not None else float(reg.setting("timeout")),
                               int(reg.setting("concurrency")), on_result, keys_of([*reg.instances, *instances]),
                               store=self.store if save_each else None)
        if not save_each:
            health.save(self.store, results)
        for result in results:
            if result.note:
                self.warn(result.note)
        return results

    def watch(self, instances: Sequence[Instance] | Callable[[], Sequence[Instance]], *, interval: float,
              on_start: Callable[[str], None], on_result: OnResult, on_tick: Callable[[], None],
              timeout: float | None = None, tick: float = 1.0, stop: Callable[[], bool] | None = None,
              sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Probe `instances` each on its own schedule, every `interval` s, saving results as they
        arrive, until `stop()` is true or Ctrl-C (see core/health/monitor). `instances` may be a function
        asked before every tick (`following` makes one that follows the registry); `sleep` replaces
        the waits (a test drives the loop)."""
        from ollamactl.core.health import monitor
        from ollamactl.core.registry.keys import keys_of

        settings.checked("interval", interval)
        if timeout is not None:
            settings.checked("timeout", timeout)
        reg = self.registry()
        listed = [] if callable(instances) else list(instances)
        schedule = monitor.Schedule(interval, timeout if timeout is not None else float(reg.setting("timeout")),
                                    int(reg.setting("concurrency")), tick)
        monitor.watch(instances, schedule, monitor.Hooks(on_start, on_result, on_tick, stop, sleep), store=self.store,
                      keys=keys_of([*reg.instances, *listed]))

    def following(self, refs: Sequence[str] = (), include_disabled: bool = False) -> Callable[[], list[Instance]]:
        """`targets(refs, include_disabled)` now, as a function a watch calls every tick to follow the
        registry: the file is read again only when it changed (one stat otherwise). Named instances
        since removed drop out, and so does everything once all are disabled; while the registry
        cannot be read (a hand edit half saved) the last answer stands, with a warning. The first
        answer is made here, so an unknown name is refused at once."""
        from ollamactl.core.state.atomic_files import file_stamp

        seen: list[Any] = [file_stamp(self._registry_file)]
        seen.append(self.targets(refs, include_disabled))

        def now() -> list[Instance]:
            stamp = file_stamp(self._registry_file)
            if stamp != seen[0]:
                seen[0] = stamp
                try:
                    reg = self.registry()
                    named = [ref for ref in refs if any(ref in (i.id, i.name) for i in reg.instances)]
                    seen[1] = self._targets(named, include_disabled, True, reg) if named or not refs else []
                except NoInstanceError:
                    seen[1] = []
                except OllamactlError as exc:
                    self.warn(f"{exc}; still watching the {len(seen[1])} instance(s) as they were")
            return seen[1]

        return now

    def refresh(self) -> list[HealthResult]:
        """Probe every enabled instance now and update the cache as results arrive (what the
        background refresher runs)."""
        return self.probe(self._targets(), save_each=True)

    def health(self, refresh: bool = False) -> dict[str, HealthResult]:
        """Every enabled instance's health, by id: from the cache where fresh, probed otherwise; no
        configured key shows in a server's words, whenever it was configured."""
        import time

        from ollamactl.core.health.probe import HealthResult, scrubbed
        from ollamactl.core.registry.keys import keys_of

        reg = self.registry()
        instances = self._targets(reg=reg)
        lookup = health_cache.current(instances, reg, self.store, self.store.read(), time.time(), refresh,
                                      warn=self.warn)
        keys = keys_of([*reg.instances, *instances])  # the cache's words hid the keys known when stored
        return {i.id: scrubbed(HealthResult.from_cache(i.id, lookup.entries[i.id]), keys) for i in instances}

    def ejections(self, now: float) -> dict[str, float]:
        """Instance id -> epoch until which the circuit breaker keeps it out (only those out at `now`)."""
        from ollamactl.core.routing.selection import ejected_until

        ejected = ((i, ejected_until(entry, now)) for i, entry in self.store.read()["breaker"].items())
        return {instance_id: float(until) for instance_id, until in ejected if until is not None}

    def cached_models(self) -> list[str]:
        """The model names in the health cache, sorted: the state's files only, never the network (for
        shell completion); none that holds a configured key."""
        from ollamactl.core.registry.keys import holds, keys_of

        keys = keys_of(self.instances())
        entries = self.store.read()["health"].values()
        return sorted({m["name"] for entry in entries for m in entry.get("models") or ()
                       if isinstance(m.get("name"), str) and not holds(m["name"], keys)})

    def models(self, results: dict[str, HealthResult] | None = None) -> list[dict[str, Any]]:
        """Per model: the healthy instances holding it, loaded or not, and digest mismatches."""
        from ollamactl.core.models.inventory import model_map

        results = self.health() if results is None else results
        return model_map(self._targets(), results)

    # -- models ---------------------------------------------------------------------------------

    def survey(self, *refs: str, include: Sequence[Instance] = (),
               results: dict[str, HealthResult] | None = None) -> Survey:
        """The named (default: enabled) instances and `include`, probed now: what each holds and
        runs, and the plans made from it (pull targets, `sync`, removals, drift; see models.ops.Survey).
        Instances neither named nor included that the cache knows are down are left out (`answering`);
        an unhealthy one is left out with a warning. Given `results` (health results by id), those are
        surveyed instead of a probe."""
        from ollamactl.core.http import Timeouts
        from ollamactl.core.models.ops import Survey

        try:
            targets = self._targets(refs)
        except NoInstanceError:  # every instance disabled: `include` alone, if given
            if not include:
                raise
            targets = []
        instances = list({i.id: i for i in [*targets, *include]}.values())
        skipped: dict[str, str] = {}
        if results is None:
            instances, skipped = self.answering(instances, named=[*(targets if refs else ()), *include])
            results = {r.id: r for r in self.probe(instances)} if instances else {}
            for instance in instances:
                if not results[instance.id].healthy:
                    self.warn(f"{instance.id} is unhealthy ({results[instance.id].error}); left out")
        reg = self.registry()
        return Survey(instances, results, Timeouts.from_settings(reg), float(reg.setting("timeout")), skipped)

    def running(self, *refs: str) -> list[Outcome]:
        """The loaded models of the named (default: enabled) instances, from /api/ps (`Outcome.data`);
        unnamed ones the cache knows are down are not asked (their Outcome says so)."""
        from ollamactl.core.models import ops as model_ops

        reg = self.registry()
        targets = self._targets(refs, reg=reg)
        asked, skipped = self.answering(targets, named=targets if refs else ())
        answers = {o.instance.id: o for o in model_ops.running(self.store, asked, float(reg.setting("timeout")),
                                                               int(reg.setting("concurrency")))}
        return [answers.get(i.id) or model_ops.Outcome(i, error=skipped[i.id]) for i in targets]

    def answering(self, instances: Sequence[Instance],
                  named: Sequence[Instance] = ()) -> tuple[list[Instance], dict[str, str]]:
        """`instances` less those the health cache knows are down (unhealthy at a check at most
        stale_ttl old) that are not in `named`, and why each of those was left out, by id.

        Model commands use it so that a dead server does not cost them its probe timeout: a warning
        names the left-out ones and how to include them, and a background refresh checks again
        those whose result is older than unhealthy_ttl.
        """
        import time

        from ollamactl.timefmt import age

        reg = self.registry()
        keep = {i.id for i in named}
        down = health_cache.known_down([i for i in instances if i.id not in keep], reg, self.store.read(), time.time())
        if not down:
            return list(instances), {}
        states = {iid: f"{entry.get('error') or 'unhealthy'}, checked {age(seconds)} ago"
                  for iid, (entry, seconds) in down.items()}
        self.warn(f"skipped {'; '.join(f'{iid} ({state})' for iid, state in states.items())}: known to be"
                  " down; `ollamactl refresh` checks again, and an instance named on the command line is asked"
                  " anyway")
        if self._revalidate is not None and \
                any(seconds > health_cache.Freshness.of(reg).unhealthy for _, seconds in down.values()):
            self._revalidate()
        return ([i for i in instances if i.id not in down],
                {iid: f"not asked: down at its last check ({state})" for iid, state in states.items()})

    def pull(self, jobs: Sequence[tuple[Instance, str]], *, concurrency: int | None = None,
             on_progress: OnProgress | None = None, timeout: float | None = None) -> list[Outcome]:
        """Pull each (instance, model), `concurrency` at a time (default 3); the cache learns each new
        copy at once; `on_progress` sees every progress line (model_ops.PullProgress). `timeout`:
        seconds an instance may send nothing, first line included (default: first_byte_timeout for
        the first, model_ops.BETWEEN_LINES_S between lines)."""
        from ollamactl.core.http import Timeouts
        from ollamactl.core.models import ops as model_ops

        jobs = [(instance, params.model(model)) for instance, model in jobs]
        concurrency = model_ops.DEFAULT_PULL_CONCURRENCY if concurrency is None else concurrency
        settings.checked("pull_concurrency", concurrency, "concurrency")
        reg = self.registry()
        timeouts = Timeouts.from_settings(reg, first_byte=timeout, param="timeout")
        between = model_ops.BETWEEN_LINES_S if timeout is None else timeout
        return model_ops.pull(self.store, jobs, timeouts, concurrency=concurrency, on_progress=on_progress,
                              between=between, probe_timeout=float(reg.setting("timeout")))

    def delete_model(self, model: str, instances: Sequence[Instance]) -> list[Outcome]:
        """Delete `model` from `instances` (Survey.removal makes the last-copy check first)."""
        from ollamactl.core.http import Timeouts
        from ollamactl.core.models import ops as model_ops

        model = params.model(model)
        reg = self.registry()
        return model_ops.delete(self.store, instances, model, Timeouts.from_settings(reg),
                                float(reg.setting("timeout")))

    def warm(self, model: str, instances: Sequence[Instance], kind: str, *, load: bool = True,
             keep_alive: int | float | str | None = None, timeout: float | None = None) -> list[Outcome]:
        """Load (or unload) `model` of `kind` (chat or embedding) on `instances`, in parallel, each
        within `timeout` s (default: first_byte_timeout: a cold load can take minutes)."""
        from ollamactl.core.http import Timeouts
        from ollamactl.core.models import ops as model_ops

        model = params.model(model)
        timeouts = Timeouts.from_settings(self.registry(), first_byte=timeout, param="timeout")
        return model_ops.warm(self.store, instances, model, kind, load, timeouts, timeouts.first_byte,
                              keep_alive=keep_alive)

    # -- routing --------------------------------------------------------------------------------

    def select(self, request: routing.Request) -> routing.Decision:
        """The routing decision for `request`: picks, and why each instance was kept or dropped."""
        _routing_request(request)
        reg = self.registry()
        return routing.select(request, reg, self._store_for(reg), self.warn, self.default_instance,
                              revalidate=self._revalidate)

    def pick(self, *, model: str | None = None, type: str | None = None, strategy: str | None = None,  # noqa: A002
             key: str | None = None, count: int = 1, strict: bool = False, refresh: bool = False) -> list[Instance]:
        """The next `count` instances for a request, as `ollamactl pick` chooses them."""
        return self.picks(routing.Request(request_type=type, model=model, strategy=strategy, key=key,
                                          count=count, strict=strict, refresh=refresh))

    def picks(self, request: routing.Request) -> list[Instance]:
        """`select(request).picks`: from the pick memo (core/routing/pick_memo.py) while it stands for the
        registry and state as they are now; else the full way, keeping a memo for the next pick."""
        if not self._own_store:
            return self.select(request).picks
        from ollamactl.core.routing import pick_memo

        key = pick_memo.key_of(self._registry_file, self._state_dir, self._store_env)
        memo = pick_memo.load(self._state_dir, key)
        if memo is not None:
            picks = memo.answer(request, self._file_store, self.warn)
            if picks is not None:
                return picks
        made: list[routing.Prepared] = []
        reg = self.registry()
        store = self._store_for(reg)
        decision = routing.select(request, reg, store, self.warn, self.default_instance,
                                  revalidate=self._revalidate, remember=made.append)
        if made and key is not None and type(store) is FileStore and not store.warned \
                and pick_memo.settled(key, made[0].data) \
                and key == pick_memo.key_of(self._registry_file, self._state_dir, self._store_env):
            entry = pick_memo.entry_of(made[0], store)
            if entry is not None:
                pick_memo.save(self._state_dir, key, str(reg.setting("strategy")), pick_memo.shape_of(request),
                               entry, memo)
        return decision.picks

    def _file_store(self) -> Store:
        """The store a pick memo was made with: the state file (the memo's key says so)."""
        if self._store is None:
            self._store = FileStore(self._state_dir, self.warn)
        return self._store

    # -- leases -------------------------------------------------------------------------------

    def lease(self, request: routing.Request | None = None, *, instance: str | None = None, wait: float | None = None,
              take: Take | None = None, notice: Notice | None = None) -> tuple[Lease, routing.Decision]:
        """Choose an instance for `request` as `pick` does (or the named `instance`) and hold a lease on it.

        `request.need_model` (run, embed): a model on no healthy instance (after one refresh) is a
        routing.ModelMissing, so nothing is sent. `request.count` is not used: one lease.

        While every eligible instance is at its max_inflight, wait up to `wait` seconds (default:
        [settings] wait) in FIFO order, then raise BusyError (exit 3). Release the lease with
        `lease.release()` or a `with lease:` block; it also expires on its own (leases.LEASE_TTL_S).

        A lease that lapsed (this process was stopped, the store restarted) is taken again only
        where there is room; until then `notice` is told (default: a warning that the request,
        already on the server, carries on over max_inflight).
        """
        from ollamactl.core.routing import leases, selection

        request = _routing_request(routing.Request() if request is None else request)
        _checked_wait(wait)
        reg = self.registry()
        store = self._store_for(reg)
        wait = float(reg.setting("wait")) if wait is None else wait
        if instance is not None:
            target = reg.find(instance)
            line = f"instance|{target.id}" if target.max_inflight is not None else None
            return leases.hold(store, lambda: routing.named(target, store), line, wait,
                               take or leases.first_free, notice or self._lapsed)
        routing.validate(request, reg)
        requests = [request]

        def choose() -> routing.Decision:
            current = requests[-1]
            requests.append(current._replace(refresh=False))  # probe at most once, however long the wait
            return routing.select(current, reg, store, self.warn, self.default_instance,
                                  revalidate=self._revalidate)

        limited = any(i.max_inflight is not None for i in reg.instances)  # else nobody ever waits
        line = selection.pool_key(request.request_type, request.model, "round-robin") if limited else None
        return leases.hold(store, choose, line, wait, take or leases.first_free, notice or self._lapsed)

    def _lapsed(self, instance: Instance, lost: bool,
                meanwhile: str = "the request, already on the server, carries on over its max_inflight",
                after: str = "") -> None:
        """Say that a lapsed lease could not be taken again (`lost`) and what happens `meanwhile`,
        or that it now was (and what happens `after`)."""
        from ollamactl.core.routing import leases

        if lost:
            self.warn(f"the lease on {instance.id} lapsed (this process was stopped, or the store lost it, for more"
                      f" than {leases.LEASE_TTL_S:g} s) and all {instance.max_inflight} of its slots are taken:"
                      f" {meanwhile} until one frees")
        else:
            self.warn(f"the lease on {instance.id} is held again{after}")

    def run_command(self, command: Sequence[str], *, model: str | None = None, type: str | None = None,  # noqa: A002
                    instance: str | None = None, strategy: str | None = None, key: str | None = None,
                    strict: bool = False, refresh: bool = False, wait: float | None = None) -> int:
        """`ollamactl exec`: run `command` against an instance chosen as `pick` chooses (or the named
        one), holding a lease on it while it runs (see `lease` for `wait`), with OLLAMA_HOST,
        OLLAMACTL_INSTANCE and OLLAMACTL_URL set in its environment, and OLLAMA_API_KEY set to the
        instance's key (removed when it has none). Signals are passed to it; its exit status is
        returned (128 + N: signal N). It is not a health signal (a grep that matched nothing exits 1),
        so it does not feed the circuit breaker.

        Capacity holds: when the lease lapsed and cannot be taken again (another caller has the slot),
        the command is paused (SIGSTOP) until the heartbeat takes it again, then resumed (SIGCONT);
        the command dies with this process (Linux: PR_SET_PDEATHSIG), so it never runs unleased."""
        from ollamactl.core.proxy import child
        from ollamactl.core.registry.keys import CLIENT_KEY_VAR, sent_key

        running = child.Child()

        def notice(instance: Instance, lost: bool) -> None:
            running.pause(lost)
            self._lapsed(instance, lost, "COMMAND is paused", ": COMMAND resumed")

        command = params.command("command", command)
        lease, _ = self.lease(routing.Request(type, model, strategy=strategy, key=key, strict=strict, refresh=refresh),
                              instance=instance, wait=wait, notice=notice)
        with lease:
            target = lease.instance
            env = dict(os.environ, OLLAMA_HOST=target.url, OLLAMACTL_INSTANCE=target.id, OLLAMACTL_URL=target.url)
            env.pop(CLIENT_KEY_VAR, None)  # an inherited key (a cloud one) is not this instance's
            if key_value := sent_key(target):
                env[CLIENT_KEY_VAR] = key_value
            status = child.run(command, env, running)
        from ollamactl.core.health.breaker import Feedback
        from ollamactl.core.metrics.counters import Sample

        Feedback(self.store).count(target.id, Sample(outcome="ok" if status == 0 else "command", model=model))
        return status

    def _default_down(self, error: OllamactlError) -> OllamactlError:
        """With nothing registered, a refused default instance most likely means no Ollama runs here."""
        from ollamactl.core.http import AllFailed, ConnectFailed

        attempts = error.attempts if isinstance(error, AllFailed) else []
        if attempts and all(isinstance(e, ConnectFailed) for _, e in attempts) and not self.instances():
            error.hint = "is Ollama running? (`ollama serve`, or try `ollamactl simulate`)"
        return error

    # -- work -----------------------------------------------------------------------------------

    def stream(self, request: GenerateRequest, emit: Emit, *, log: Log | None = None,
               flush: Flush | None = None) -> Completion:
        """Send a generate/chat request to the fleet with failover before output; `emit(raw, obj)` sees
        every NDJSON line (see generate.complete). The request says where it may go (its instance,
        strategy, key, tries, wait, strict, timeouts). A lease is held on the instance being tried
        (waiting up to `request.wait` s for one, see `lease`). A model on no healthy instance sends
        nothing (routing.ModelMissing); `strict`: no default-instance fallback."""
        from ollamactl.core.health.breaker import Feedback
        from ollamactl.core.http import Timeouts
        from ollamactl.core.proxy import generate

        params.request("request", request, generate.GenerateRequest)
        settings.checked("tries", request.tries)
        lease, decision = self.lease(_chat_route(request), instance=request.instance, wait=request.wait)
        with lease:
            try:
                return generate.complete(decision.failover_order(lease.instance), request, emit,
                                         timeouts=request.timeouts or Timeouts.from_settings(self.registry()),
                                         log=log, feedback=Feedback(self.store), flush=flush, on_attempt=lease.move)
            except OllamactlError as error:
                raise self._default_down(error) from None

    def generate(self, model: str, prompt: str, **fields: Unpack[GenerateFields]) -> Iterator[str]:
        """The answer's text fragments as they arrive, from the first instance that serves the model.

        `fields`: the rest of a GenerateRequest (chat, system, options, format, keep_alive, think;
        instance, strategy, key, tries, wait, strict, timeouts). Arguments are checked here, before
        the first fragment is asked for.
        """
        from ollamactl.core.proxy.generate import GenerateFields, GenerateRequest

        request = GenerateRequest(model, prompt, **params.fields(GenerateFields, fields))
        params.request("request", request, GenerateRequest)
        settings.checked("tries", request.tries)
        _checked_wait(request.wait)
        if request.instance is None:  # what `lease` checks, from the fragments' thread: here, now
            routing.validate(_chat_route(request), self.registry())
        return self._fragments(request)

    def _fragments(self, request: GenerateRequest) -> Iterator[str]:
        import queue
        import threading

        from ollamactl.core.proxy.generate import text_fragment

        chat = request.chat
        fragments: queue.Queue[Any] = queue.Queue()
        finished = object()

        def emit(raw: bytes, obj: dict) -> bool:
            text = text_fragment(obj, chat)
            if text:
                fragments.put(text)
            return bool(text)

        def work() -> None:
            try:
                self.stream(request, emit)
            except BaseException as error:  # noqa: BLE001 - handed to the consumer's thread
                fragments.put(error)
                return
            fragments.put(finished)

        threading.Thread(target=work, name="ollamactl-generate", daemon=True).start()
        while (item := fragments.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item

    def embed_batches(self, request: EmbedRequest, batches: Iterable[list[str]], write: Write, *,
                      log: Log | None = None, progress: Callable[[int], None] | None = None) -> EmbedSummary:
        """Embed `batches` on every eligible instance at once (or `request.instance`); `write(start,
        vectors)` gets them in input order.

        Instances holding different builds (digests) of the model are refused unless
        `request.allow_mixed`. A lease is held on each instance used; those at their max_inflight are
        left out (while all are, it waits up to `request.wait` s, see `lease`). A model on no healthy
        instance sends nothing (routing.ModelMissing); `strict`: no default-instance fallback.
        """
        from ollamactl.core.proxy.embed import EmbedRequest
        from ollamactl.core.routing import leases

        params.request("request", request, EmbedRequest)
        settings.checked("per_instance", request.per_instance)
        lease, decision = self.lease(routing.Request("embedding", request.model, strict=request.strict,
                                                     need_model=True),
                                     instance=request.instance, wait=request.wait, take=leases.every_free)
        with lease:
            try:
                return self._embed(lease.instances, decision, request, batches, write, log=log, progress=progress)
            except OllamactlError as error:
                raise self._default_down(error) from None

    def _embed(self, instances: list[Instance], decision: routing.Decision, request: EmbedRequest,
               batches: Iterable[list[str]], write: Write, *, log: Log | None,
               progress: Callable[[int], None] | None) -> EmbedSummary:
        from ollamactl.core.health.breaker import Feedback
        from ollamactl.core.http import Timeouts, label
        from ollamactl.core.proxy import embed

        model = request.model
        if request.instance is None:
            digests = embed.model_digests(instances, decision.health, model)
            if len(set(digests.values())) > 1:
                listing = ", ".join(f"{iid} {digest[:12]}" for iid, digest in digests.items())
                if not request.allow_mixed:
                    raise OllamactlError(f"the instances hold different builds of {model}: {listing}",
                                         Said("vectors from different builds do not mix; pull the same build"
                                              " everywhere, pick one with {instance}, or pass {allow_mixed=True}"))
                self.warn(Said("mixing different builds of {model} ({allow_mixed=True}): {listing}", model=model,
                               listing=listing))
        if log is not None:
            log("embedding on " + ", ".join(label(i) for i in instances) + f" ({request.per_instance} in flight each)")
        return embed.embed(instances, model, batches, write,
                           timeouts=request.timeouts or Timeouts.from_settings(self.registry()),
                           per_instance=request.per_instance, log=log, progress=progress,
                           feedback=Feedback(self.store))

    def embed(self, model: str, texts: Iterable[str], *, batch_size: int = settings.DEFAULT_BATCH_SIZE,
              log: Log | None = None, progress: Callable[[int], None] | None = None,
              **fields: Unpack[EmbedFields]) -> list[list[float]]:
        """One vector per text, in input order. `fields`: the rest of an EmbedRequest (instance,
        allow_mixed, per_instance, wait, strict, timeouts); `log` and `progress` as for `embed_batches`."""
        from ollamactl.core.proxy.embed import EmbedFields, EmbedRequest, batched

        settings.checked("batch_size", batch_size)
        if isinstance(texts, str):
            raise InvalidValue(("texts",), f"must be a list of strings, got {params.shown(texts)}",
                               "wrap one text in a list: [text]")
        request = EmbedRequest(model, **params.fields(EmbedFields, fields))
        vectors: list[list[float]] = []
        texts = [params.text("texts", text) for text in texts]  # before anything is sent (the vectors outweigh them)
        self.embed_batches(request, batched(texts, batch_size), lambda start, chunk: vectors.extend(chunk), log=log,
                           progress=progress)
        return vectors

    # -- export ---------------------------------------------------------------------------------

    def export(self, fmt: str, *, model: str | None = None, type: str | None = None,  # noqa: A002
               include_disabled: bool = False, listen: str | None = None,
               output: str | os.PathLike[str] | None = None, secrets_file: str | os.PathLike[str] | None = None,
               write: bool = False) -> Exported:
        """The fleet as a gateway config (litellm, nginx, haproxy) or JSON, from the registry and the
        health cache; its `warnings` say what was left out and why. `listen` (ADDR:PORT, default
        DEFAULT_LISTEN: loopback, Ollama's port) is where the gateway listens; `output` the path the
        config goes to (named in its header); nginx with `secrets_file` also gets the keys of keyed
        instances, in `Exported.secrets`, for that file. Both paths are checked before anything is
        built; with `write`, the secrets file (mode 0600) and then the config are written to them,
        atomically (core/export/files.py)."""
        import time

        from ollamactl.core.export import build as export
        from ollamactl.core.export import files as export_files
        from ollamactl.core.export.common import DEFAULT_LISTEN
        from ollamactl.core.health.probe import scrubbed_entries
        from ollamactl.core.registry.keys import keys_of

        if model is not None:
            params.model(model)
        files = export_files.checked_paths(fmt, output, secrets_file)
        if listen is not None and fmt == "json":
            raise UsageError(Said("{listen} applies to the gateway formats, not json"), "leave it out")
        if listen is not None:
            params.text("listen", listen)
        reg = self.registry()
        keyed = [i for i in reg.instances if i.api_key or i.api_key_env] if secrets_file else []
        options = export.Options(model=model, request_type=type, include_all=include_disabled,
                                 strategy=str(reg.setting("strategy")),
                                 health_ttl=health_cache.Freshness.of(reg).stale,  # older: a warning
                                 now=time.time(), listen=DEFAULT_LISTEN if listen is None else listen,
                                 output=str(files.output) if files.output else None,
                                 secrets_file=str(files.secrets) if files.secrets else None,
                                 keys={i.id: key for i in keyed if (key := i.resolve_api_key())})
        # The cache's words hid the keys known when stored; keys may have changed since. The config
        # itself is never scrubbed: only the secrets file (written 0600, for nginx) holds keys.
        health = scrubbed_entries(self.store.read()["health"], keys_of(reg.instances))
        result = export.export(fmt, reg.instances, health, options)
        if write:
            export_files.write(files, result)
        return result


def _chat_route(request: GenerateRequest) -> routing.Request:
    """Where a generate or chat `request` may go, as routing chooses (its model on a chat instance)."""
    return routing.Request("chat", request.model, strategy=request.strategy, key=request.key, strict=request.strict,
                           need_model=True)


def _checked_wait(wait: Any) -> None:
    """An InvalidValue unless `wait` is None (the setting) or seconds to wait (0: not at all)."""
    if wait is not None and (problem := settings.problem("wait", wait)):
        raise InvalidValue(("wait",), problem, "use 0 to give up at once")


def _routing_request(request: Any) -> routing.Request:
    """`request` when it is a routing.Request (an InvalidValue otherwise)."""
    if not isinstance(request, routing.Request):
        raise InvalidValue(("request",), f"must be a routing.Request, got {params.shown(request)}")
    return request


def _shown_text(raw: bytes, line: dict) -> bool:
    """A measurement's `emit` (its requests are generate calls): nothing is shown; its first text
    counts as shown (first token)."""
    from ollamactl.core.proxy.generate import text_fragment

    return bool(text_fragment(line, chat=False))


def _most_held(holders: dict[str, dict[str, str | None]]) -> str | None:
    """The generation model most instances hold (ties: the first by name; embedding models, by
    their names, left out), or None."""
    counts: dict[str, int] = {}
    for models in holders.values():
        for name in models:
            if "embed" not in name:
                counts[name] = counts.get(name, 0) + 1
    return min(counts, key=lambda name: (-counts[name], name)) if counts else None
