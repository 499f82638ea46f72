"""The state in Redis, shared by every machine of a team: one rotation, one breaker, one count of work.

`[settings] store = "redis://host:6379/0"` (or `$OLLAMACTL_STORE`; `?prefix=team1:` picks the key
prefix, default `ollamactl:`, so several fleets can share a server) puts the state here instead
of the state file. It implements `store.Store` with the `redis` client (`pip install
'ollamactl[redis]'`), imported only when this store is used:

    {prefix}cursors, {prefix}weights,   hashes: rotation cursors (HINCRBY: atomic) and weights
    {prefix}breaker, {prefix}latency    hashes: circuit breaker entries and request latencies
    {prefix}health:{id}                 a health result (JSON), expiring after CACHE_EXPIRY_S
    {prefix}health-ids                  the ids that have one
    {prefix}leases:{id}                 sorted set: lease holder -> expiry (ms, the server's clock)
    {prefix}queue:{line} / queue-alive:{line} / queue-seq    FIFO waiters: arrival and expiry

Leases and waiters are taken, renewed and counted by Lua scripts that read the server's clock
(atomic, and one clock for every machine); their keys expire when nobody renews them.
`update(change)` is an optimistic transaction (WATCH/MULTI, retried on conflict).

Redis unreachable (or the client missing): one warning, then this process uses the local state
file (`fallback`), so routing never stops because the shared cache is gone. It tries Redis again
RETRY_S s later, so a long holder (exec) whose heartbeat met an outage takes its lease again in
the Redis that is back (through the capacity check) instead of keeping it in its own file.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ollamactl.core import redis_url, state
from ollamactl.core.store import REFUSED, FileStore

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.store import Warn

T = TypeVar("T")

CACHE_EXPIRY_S = 86400  # a health entry nobody refreshed for a day is dropped (freshness is checked anyway)
CONNECT_TIMEOUT_S = 0.5
IO_TIMEOUT_S = 2.0
RETRY_S = 5.0  # after a failure, Redis is tried again this much later (a lease's lifetime)
HASHES = ("cursors", "weights", "breaker", "latency", "metrics")

_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS[1] leases of one instance; ARGV: limit (0: none), holder, ttl ms.
# Returns store.REFUSED (0, at the limit), TAKEN (1) or KEPT (2, already held: renewed).
_LEASE = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[2])
local limit = tonumber(ARGV[1])
if not held and limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if held then return 2 end
return 1
"""

# KEYS: sorted sets of member -> expiry ms (leases, queue-alive). Returns the live count of each.
_INFLIGHT = _NOW_MS + """
local counts = {}
for i, key in ipairs(KEYS) do counts[i] = redis.call('ZCOUNT', key, '(' .. now, '+inf') end
return counts
"""

# KEYS: queue (ticket -> arrival), alive (ticket -> expiry ms), sequence; ARGV: ticket, ttl ms.
# Returns how many live waiters are ahead of the ticket.
_QUEUE = _NOW_MS + """
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[1], gone)
  redis.call('ZREM', KEYS[2], gone)
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('ZRANK', KEYS[1], ARGV[1])
"""

# ARGV[1] prefix. Returns the hashes of HASHES (flat) and the health entries (flat id, json).
_READ = """
local out = {}
for i, name in ipairs({'cursors', 'weights', 'breaker', 'latency', 'metrics'}) do
  out[i] = redis.call('HGETALL', ARGV[1] .. name)
end
local health = {}
for _, id in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'health-ids')) do
  local value = redis.call('GET', ARGV[1] .. 'health:' .. id)
  if value then
    health[#health + 1] = id
    health[#health + 1] = value
  end
end
out[6] = health
return out
"""


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _decoded(raw: dict[str, str], decode: Callable[[str], Any]) -> dict[str, Any]:
    """Values that do not parse are left out (the state is a cache; validation drops bad shapes)."""
    result = {}
    for key, value in raw.items():
        try:
            result[key] = decode(value)
        except ValueError:
            continue
    return result


_DECODERS: dict[str, Callable[[str], Any]] = {"cursors": int, "weights": json.loads, "breaker": json.loads,
                                              "latency": float, "metrics": json.loads}
_ENCODERS: dict[str, Callable[[Any], str]] = {"cursors": str, "weights": json.dumps, "breaker": json.dumps,
                                              "latency": repr, "metrics": json.dumps}


def _document(hashes: Sequence[dict[str, str]], health: dict[str, str]) -> dict[str, Any]:
    data = state.empty()
    for section, raw in zip(HASHES, hashes, strict=True):
        data[section] = _decoded(raw, _DECODERS[section])
    data["health"] = _decoded(health, json.loads)
    return state.validate(data)[0]


class RedisStore:
    """`store.Store` on a Redis server (see the module docstring)."""

    def __init__(self, url: str, fallback: FileStore, warn: Warn):
        self.target = redis_url.parse(url)
        self.prefix = self.target.prefix
        self.fallback = fallback
        self.warn = warn
        self.description = f"redis {self.target.shown} (key prefix {self.prefix})"
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._down = False  # Redis failed in this process (said once)
        self._retry_at = 0.0  # time.monotonic() from which Redis is tried again

    # -- the connection and the fallback --------------------------------------------------------

    def _connect(self) -> Any:
        if self._client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            target = self.target
            where = ({"unix_socket_path": target.path} if target.path is not None else
                     {"host": target.host, "port": target.port, "ssl": target.tls})
            self._client = redis.Redis(
                **where, db=target.db, username=target.username, password=target.password, decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=IO_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
            self._scripts = {name: self._client.register_script(body)
                             for name, body in (("lease", _LEASE), ("inflight", _INFLIGHT), ("queue", _QUEUE),
                                                ("read", _READ))}
        return self._client

    def _run(self, work: Callable[[Any], T], local: Callable[[FileStore], T]) -> T:
        """`work(client)` on Redis, or `local(fallback)` for RETRY_S s after Redis failed."""
        if time.monotonic() >= self._retry_at:
            try:
                return work(self._connect())
            except ImportError:
                self._fail("the redis client is not installed; install it with `pip install 'ollamactl[redis]'`")
            except Exception as exc:  # noqa: BLE001 - every client failure means the same: use the file
                import redis

                if not isinstance(exc, redis.RedisError):
                    raise
                self._fail(f"{self.target.shown}: {(str(exc) or type(exc).__name__).rstrip('.')}")
        return local(self.fallback)

    def _fail(self, why: str) -> None:
        self._retry_at = time.monotonic() + RETRY_S
        if self._down:
            return
        self._down = True
        self.description += " - unreachable, using " + self.fallback.description
        self.warn(f"the Redis store is unavailable ({why}); using the local state file {self.fallback.path}"
                  " for now (this machine only)")

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- Store ----------------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        def work(client: Any) -> dict[str, Any]:
            raw = self._scripts["read"](args=[self.prefix])
            hashes, health = raw[:len(HASHES)], raw[len(HASHES)]
            return _document([_pairs(h) for h in hashes], _pairs(health))

        return self._run(work, FileStore.read)

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        def work(client: Any) -> T:
            from redis.exceptions import WatchError

            with client.pipeline() as pipe:
                while True:
                    try:
                        return self._transaction(pipe, change)
                    except WatchError:
                        continue  # another writer came first: read again

        return self._run(work, lambda local: local.update(change))

    def _transaction(self, pipe: Any, change: Callable[[dict[str, Any]], T]) -> T:
        index = self._key("health-ids")
        pipe.watch(index, *(self._key(section) for section in HASHES))
        ids = sorted(pipe.smembers(index))
        health_keys = [self._key("health", i) for i in ids]
        if health_keys:
            pipe.watch(*health_keys)
        hashes = [pipe.hgetall(self._key(section)) for section in HASHES]
        values = pipe.mget(health_keys) if health_keys else []
        data = _document(hashes, {i: v for i, v in zip(ids, values, strict=True) if v is not None})
        before = copy.deepcopy(data)
        result = change(data)
        pipe.multi()
        for section in HASHES:
            old, new = before[section], data[section]
            gone = [key for key in old if key not in new]
            if gone:
                pipe.hdel(self._key(section), *gone)
            changed = {key: _ENCODERS[section](value) for key, value in new.items() if old.get(key) != value}
            if changed:
                pipe.hset(self._key(section), mapping=changed)
        for instance_id in before["health"].keys() - data["health"].keys():
            pipe.delete(self._key("health", instance_id))
            pipe.srem(index, instance_id)
        for instance_id, entry in data["health"].items():
            if before["health"].get(instance_id) != entry:
                pipe.set(self._key("health", instance_id), json.dumps(entry), ex=CACHE_EXPIRY_S)
                pipe.sadd(index, instance_id)
        pipe.execute()
        return result

    def advance(self, pool: str, count: int) -> int:
        return self._run(lambda client: int(client.hincrby(self._key("cursors"), pool, count)) - count,
                         lambda local: local.advance(pool, count))

    def inflight(self, instance_ids: Sequence[str], state: dict[str, Any] | None = None) -> dict[str, int]:
        """Counted in Redis (`state`, a read of the document, holds no leases here)."""
        ids = list(instance_ids)
        if not ids:
            return {}

        def work(client: Any) -> dict[str, int]:
            counts = self._scripts["inflight"](keys=[self._key("leases", i) for i in ids])
            return {i: int(n) for i, n in zip(ids, counts, strict=True)}

        return self._run(work, lambda local: local.inflight(ids))

    def acquire(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> bool:
        return self.renew(instance_id, limit, holder, ttl) != REFUSED

    def renew(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> int:
        return self._run(lambda client: self._lease(instance_id, limit or 0, holder, ttl),
                         lambda local: local.renew(instance_id, limit, holder, ttl))

    def _lease(self, instance_id: str, limit: int, holder: str, ttl: float) -> int:
        return int(self._scripts["lease"](keys=[self._key("leases", instance_id)],
                                          args=[limit, holder, int(ttl * 1000)]))

    def release(self, instance_id: str, holder: str) -> None:
        self._run(lambda client: client.zrem(self._key("leases", instance_id), holder),
                  lambda local: local.release(instance_id, holder))

    def queue(self, pool: str, ticket: str, ttl: float) -> int:
        keys = [self._key("queue", pool), self._key("queue-alive", pool), self._key("queue-seq")]
        return self._run(lambda client: int(self._scripts["queue"](keys=keys, args=[ticket, int(ttl * 1000)])),
                         lambda local: local.queue(pool, ticket, ttl))

    def waiting(self, pool: str) -> int:
        """The live waiters, counted as live leases are: the queue-alive set holds ticket -> expiry."""
        return self._run(lambda client: int(self._scripts["inflight"](keys=[self._key("queue-alive", pool)])[0]),
                         lambda local: local.waiting(pool))

    def leave(self, pool: str, ticket: str) -> None:
        def work(client: Any) -> None:
            with client.pipeline() as pipe:
                pipe.zrem(self._key("queue", pool), ticket).zrem(self._key("queue-alive", pool), ticket).execute()

        self._run(work, lambda local: local.leave(pool, ticket))
