"""The state in Redis, shared by every machine of a team: one rotation, one breaker, one count of work.

`[settings] store = "redis://host:6379/0"` (or `$OLLAMACTL_STORE`; `?prefix=team1:` picks the key
prefix, default `ollamactl:`, so several fleets can share a server) puts the state here instead
of the state file. It implements `store.Store` over core/state/resp.py, a small client of our own (one
deadline per operation for all of its I/O, capped replies; redis-py took longer to import than a
file-store `pick` takes to run):

    {prefix}cursors, {prefix}weights,   hashes: rotation cursors (HINCRBY: atomic) and weights
    {prefix}breaker, {prefix}latency    hashes: circuit breaker entries and request latencies
    {prefix}health:{id}                 a health result (JSON), expiring after CACHE_EXPIRY_S
    {prefix}health-ids                  the ids that have one
    {prefix}leases:{id}                 sorted set: lease holder -> expiry (ms, the server's clock)
    {prefix}queue:{line} / queue-alive:{line} / queue-seq    FIFO waiters: arrival and expiry

Leases and waiters are taken, renewed and counted by Lua scripts that read the server's clock
(atomic, and one clock for every machine); their keys expire when nobody renews them.
`update(change)` is an optimistic transaction (WATCH/MULTI, retried on conflict).

Redis unreachable, past the operation's deadline (`?timeout=`, 2 s by default), answering too much
or not answering Redis: one warning, then this process uses the local state file (`fallback`), so
routing never stops because the shared cache is gone. It tries Redis again RETRY_S s later, so a
long holder (exec) whose heartbeat met an outage takes its lease again in the Redis that is back
(through the capacity check) instead of keeping it in its own file.
"""

from __future__ import annotations

import json
import threading
import time

from ollamactl.core.state import redis_url
from ollamactl.core.state import schema as state
from ollamactl.core.state.resp import Connection, RedisError, ReplyError
from ollamactl.core.state.store import REFUSED, FileStore

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover (typing is not imported by `pick`)
    from collections.abc import Callable, Sequence
    from typing import Any, TypeVar

    from ollamactl.core.state.store import Warn

    T = TypeVar("T")
    Command = tuple[Any, ...]

CACHE_EXPIRY_S = 86400  # a health entry nobody refreshed for a day is dropped (freshness is checked anyway)
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

# ARGV[1] prefix, ARGV[2...] the hashes (HASHES). Returns each hash (flat), then the health entries (flat id, json).
_READ = """
local out = {}
for i = 2, #ARGV do
  out[i - 1] = redis.call('HGETALL', ARGV[1] .. ARGV[i])
end
local health = {}
for _, id in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'health-ids')) do
  local value = redis.call('GET', ARGV[1] .. 'health:' .. id)
  if value then
    health[#health + 1] = id
    health[#health + 1] = value
  end
end
out[#ARGV] = health
return out
"""


def _strings(reply: object, what: str) -> list[str]:
    """`reply` as the list of strings it must be (an unexpected shape is the server's fault: RedisError)."""
    if not isinstance(reply, list) or not all(isinstance(item, str) for item in reply):
        raise RedisError(f"unexpected reply to {what}: {type(reply).__name__}")
    return reply


def _pairs(reply: object, what: str) -> dict[str, str]:
    flat = _strings(reply, what)
    if len(flat) % 2:
        raise RedisError(f"unexpected reply to {what}: an odd number of values")
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _number(reply: object, what: str) -> int:
    if not isinstance(reply, int):
        raise RedisError(f"unexpected reply to {what}: {type(reply).__name__}")
    return reply


def _decoded(raw: dict[str, str], decode: Callable[[str], Any]) -> dict[str, Any]:
    """Values that do not parse are left out (the state is a cache; validation drops bad shapes)."""
    result = {}
    for key, value in raw.items():
        try:
            result[key] = decode(value)
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser's stack
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
        self._connection = Connection(self.target)
        self._lock = threading.Lock()  # one operation at a time on the connection (lease heartbeats are threads)
        self._down = False  # Redis failed in this process (said once)
        self._retry_at = 0.0  # time.monotonic() from which Redis is tried again

    # -- the connection and the fallback --------------------------------------------------------

    def _run(self, work: Callable[[Connection], T], local: Callable[[FileStore], T]) -> T:
        """`work(connection)` on Redis within one deadline, or `local(fallback)` for RETRY_S s after
        Redis failed."""
        with self._lock:
            if time.monotonic() >= self._retry_at:
                self._connection.start(self.target.timeout)
                try:
                    return work(self._connection)
                except RedisError as exc:
                    self._connection.close()
                    self._fail(f"{self.target.shown}: {str(exc).rstrip('.')}")
                except BaseException:  # a caller's change failed mid-transaction: its WATCH must not linger
                    self._connection.close()
                    raise
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

    def _script(self, connection: Connection, body: str, keys: Sequence[str], *args: Any) -> object:
        return connection.call("EVAL", body, len(keys), *keys, *args)

    # -- Store ----------------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        def work(connection: Connection) -> dict[str, Any]:
            raw = self._script(connection, _READ, [], self.prefix, *HASHES)
            if not isinstance(raw, list) or len(raw) != len(HASHES) + 1:
                raise RedisError("unexpected reply to the read script")
            hashes, health = raw[:len(HASHES)], raw[len(HASHES)]
            return _document([_pairs(h, "HGETALL") for h in hashes], _pairs(health, "the read script"))

        return self._run(work, FileStore.read)

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        def work(connection: Connection) -> T:
            while True:
                done, result = self._transaction(connection, change)
                if done:
                    return result
                # another writer came first: read again (within the same deadline)

        return self._run(work, lambda local: local.update(change))

    def _transaction(self, connection: Connection, change: Callable[[dict[str, Any]], T]) -> tuple[bool, T]:
        index = self._key("health-ids")
        sections = [self._key(section) for section in HASHES]
        ids = sorted(_strings(connection.send([("WATCH", index, *sections), ("SMEMBERS", index)])[1], "SMEMBERS"))
        health_keys = [self._key("health", i) for i in ids]
        reads: list[Command] = [("HGETALL", key) for key in sections]
        if health_keys:
            reads = [("WATCH", *health_keys), *reads, ("MGET", *health_keys)]
        replies = connection.send(reads)
        if health_keys:
            replies = replies[1:]
            values = replies.pop()
            if not isinstance(values, list) or len(values) != len(ids) \
                    or not all(value is None or isinstance(value, str) for value in values):
                raise RedisError("unexpected reply to MGET")
        else:
            values = []
        data = _document([_pairs(reply, "HGETALL") for reply in replies],
                         {i: v for i, v in zip(ids, values, strict=True) if v is not None})
        import copy  # only for a transaction: not on a pick's path

        before = copy.deepcopy(data)
        result = change(data)
        writes = self._writes(before, data)
        if not writes:
            connection.call("UNWATCH")
            return True, result
        outcome = connection.send([("MULTI",), *writes, ("EXEC",)])[-1]
        if outcome is None:
            return False, result
        if not isinstance(outcome, list):
            raise RedisError("unexpected reply to EXEC")
        for reply in outcome:
            if isinstance(reply, ReplyError):
                raise reply
        return True, result

    def _writes(self, before: dict[str, Any], data: dict[str, Any]) -> list[Command]:
        """The commands that turn `before` into `data` in Redis."""
        index = self._key("health-ids")
        writes: list[Command] = []
        for section in HASHES:
            old, new = before[section], data[section]
            gone = [key for key in old if key not in new]
            if gone:
                writes.append(("HDEL", self._key(section), *gone))
            changed = [item for key, value in new.items() if old.get(key) != value
                       for item in (key, _ENCODERS[section](value))]
            if changed:
                writes.append(("HSET", self._key(section), *changed))
        for instance_id in before["health"].keys() - data["health"].keys():
            writes += [("DEL", self._key("health", instance_id)), ("SREM", index, instance_id)]
        for instance_id, entry in data["health"].items():
            if before["health"].get(instance_id) != entry:
                writes += [("SET", self._key("health", instance_id), json.dumps(entry), "EX", CACHE_EXPIRY_S),
                           ("SADD", index, instance_id)]
        return writes

    def advance(self, pool: str, count: int) -> int:
        return self._run(lambda connection: _number(connection.call("HINCRBY", self._key("cursors"), pool, count),
                                                    "HINCRBY") - count,
                         lambda local: local.advance(pool, count))

    def inflight(self, instance_ids: Sequence[str], state: dict[str, Any] | None = None) -> dict[str, int]:
        """Counted in Redis (`state`, a read of the document, holds no leases here)."""
        ids = list(instance_ids)
        if not ids:
            return {}

        def work(connection: Connection) -> dict[str, int]:
            return dict(zip(ids, self._live(connection, [self._key("leases", i) for i in ids]), strict=True))

        return self._run(work, lambda local: local.inflight(ids))

    def _live(self, connection: Connection, keys: Sequence[str]) -> list[int]:
        """The live members (expiry still ahead) of each sorted set in `keys`: leases or waiters."""
        counts = self._script(connection, _INFLIGHT, keys)
        if not isinstance(counts, list) or len(counts) != len(keys):
            raise RedisError("unexpected reply to the inflight script")
        return [_number(n, "the inflight script") for n in counts]

    def acquire(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> bool:
        return self.renew(instance_id, limit, holder, ttl) != REFUSED

    def renew(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> int:
        return self._run(lambda connection: self._lease(connection, instance_id, limit or 0, holder, ttl),
                         lambda local: local.renew(instance_id, limit, holder, ttl))

    def _lease(self, connection: Connection, instance_id: str, limit: int, holder: str, ttl: float) -> int:
        return _number(self._script(connection, _LEASE, [self._key("leases", instance_id)], limit, holder,
                                    int(ttl * 1000)), "the lease script")

    def release(self, instance_id: str, holder: str) -> None:
        self._run(lambda connection: connection.call("ZREM", self._key("leases", instance_id), holder),
                  lambda local: local.release(instance_id, holder))

    def queue(self, pool: str, ticket: str, ttl: float) -> int:
        keys = [self._key("queue", pool), self._key("queue-alive", pool), self._key("queue-seq")]
        return self._run(lambda connection: _number(self._script(connection, _QUEUE, keys, ticket, int(ttl * 1000)),
                                                    "the queue script"),
                         lambda local: local.queue(pool, ticket, ttl))

    def waiting(self, pool: str) -> int:
        """The live waiters, counted as live leases are: the queue-alive set holds ticket -> expiry."""
        return self._run(lambda connection: self._live(connection, [self._key("queue-alive", pool)])[0],
                         lambda local: local.waiting(pool))

    def leave(self, pool: str, ticket: str) -> None:
        self._run(lambda connection: connection.send([("ZREM", self._key("queue", pool), ticket),
                                                      ("ZREM", self._key("queue-alive", pool), ticket)]),
                  lambda local: local.leave(pool, ticket))
