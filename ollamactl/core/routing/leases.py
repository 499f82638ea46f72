"""Leases: the work in flight on each instance, counted in the state store.

Ollama has no queue-depth endpoint, so ollamactl counts what it sends: `exec`, `run` and `embed`
hold a lease on the instance they use while they use it. `max_inflight` and the `least-busy`
strategy read the live lease counts (`Store.inflight`), on this machine or, with the Redis store,
across every machine that shares it.

A lease expires LEASE_TTL_S seconds after its last renewal; a heartbeat thread renews it every
HEARTBEAT_S seconds while its holder lives, so a holder killed with SIGKILL stops counting within
LEASE_TTL_S seconds. A lease that lapsed anyway (its holder was stopped, the store restarted empty
or was out of reach) is taken again only through the capacity check; while that is refused the
holder is told (`Notice`) and the heartbeat keeps asking, as often as a waiter looks. When every eligible instance is at
capacity, `hold` waits in a FIFO line (one per request type and model) for up to `wait` seconds,
then gives up with BusyError (exit 3); a waiter ended by SIGTERM or SIGHUP leaves the line first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ollamactl.core.errors import BusyError, OllamactlError, Said
from ollamactl.core.state.store import REFUSED

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.routing.router import Decision
    from ollamactl.core.state.store import Store

LEASE_TTL_S = 5.0  # a lease (or a place in line) lasts this long after its last renewal
HEARTBEAT_S = 1.5  # its holder renews it this often
POLL_S = 0.1  # a waiter looks again this often

Take = Callable[["Lease", "Decision"], bool]  # take leases for a decision; False: none was free
Notice = Callable[["Instance", bool], None]  # a lapsed lease could not be taken again (True), or now was (False)


class Lease:
    """Leases held by one holder (one process's piece of work), renewed until released.

    Usually on one instance (exec, run; `move` follows a failover); embed holds one on each
    instance it sends to. A context manager: leaving the block releases everything.

    A lease on an instance without a max_inflight cannot be refused, so it is written to the store
    from a thread of its own while the holder gets on with its work (run's request goes out during
    the write). That write, the renewals and the release take turns under `_held`, and the write is
    skipped when the lease was released (or moved on) first.
    """

    def __init__(self, store: Store, holder: str | None = None, notice: Notice | None = None):
        self.store = store
        self.holder = holder or os.urandom(8).hex()
        self.notice = notice
        self.instances: list[Instance] = []
        self.lost: set[str] = set()  # instances whose lapsed lease could not be taken again (yet)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = threading.Lock()  # writes of these leases (take, renewal, release) never interleave

    @property
    def instance(self) -> Instance:
        return self.instances[0]

    def take(self, instance: Instance) -> bool:
        """Take a lease on `instance` (refused when it is at its max_inflight)."""
        limit = instance.max_inflight
        # Counted as held before it is asked for: a Ctrl-C that lands after the store wrote it
        # still releases it (releasing one that was never written costs nothing).
        self.instances.append(instance)
        if limit is not None and not self.store.acquire(instance.id, limit, self.holder, LEASE_TTL_S):
            self.instances.remove(instance)
            return False
        if limit is None:
            threading.Thread(target=self._acquire, args=(instance,), name="ollamactl-lease-write", daemon=True).start()
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="ollamactl-lease", daemon=True)
            self._thread.start()
        return True

    def move(self, instance: Instance) -> bool:
        """Hand the (single) lease to `instance`, as a failover does, through the capacity check:
        False (and no lease held) when another caller has filled it since it was chosen."""
        if self.instances and self.instances[0].id == instance.id:
            return True
        self._drop()
        return self.take(instance)

    def release(self) -> None:
        self._stop.set()
        try:
            self._drop()
        except KeyboardInterrupt:  # a second Ctrl-C cut the release short: finish it, then stop
            self._drop()
            raise

    def _acquire(self, instance: Instance) -> None:
        """Write a lease that cannot be refused, unless it was released before this thread ran."""
        with self._held:
            if instance in self.instances:
                with contextlib.suppress(OllamactlError):  # as a renewal: the lease is counted, not a condition
                    self.store.acquire(instance.id, None, self.holder, LEASE_TTL_S)

    def _drop(self) -> None:
        with self._held:
            for instance in self.instances:
                with contextlib.suppress(OllamactlError):  # it expires on its own anyway
                    self.store.release(instance.id, self.holder)
            self.instances = []
            self.lost.clear()

    def _beat(self) -> None:
        """Renew every HEARTBEAT_S s; while a lapsed lease is refused, ask every POLL_S s, as often
        as a waiter looks (else waiters would take each slot that frees first)."""
        while not self._stop.wait(POLL_S if self.lost else HEARTBEAT_S):
            self.renew()

    def renew(self) -> None:
        """One heartbeat: extend every held lease, and take a lapsed one again only where the
        instance has room (the holder is told when that is refused, and when it succeeds later).
        A renewal takes a lease again when it had expired, so one that ran over a release would bring
        the released lease back for LEASE_TTL_S s: renewals and releases take turns under `_held`."""
        with self._held:
            for instance in self.instances:
                try:
                    outcome = self.store.renew(instance.id, instance.max_inflight, self.holder, LEASE_TTL_S)
                except OllamactlError:
                    continue  # the store could not be asked: the next heartbeat asks again
                lost = outcome == REFUSED
                if lost != (instance.id in self.lost):
                    (self.lost.add if lost else self.lost.discard)(instance.id)
                    if self.notice is not None:
                        self.notice(instance, lost)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def first_free(lease: Lease, decision: Decision) -> bool:
    """exec and run: a lease on the first pick that still has room, else on the next candidate in
    failover order (another caller may have filled the pick since it was chosen)."""
    return any(lease.take(instance) for instance in decision.failover_order())


def every_free(lease: Lease, decision: Decision) -> bool:
    """embed: a lease on every candidate that still has room (at least one)."""
    return sum(lease.take(instance) for instance in decision.candidates) > 0


def hold(store: Store, choose: Callable[[], Decision], line: str | None, wait: float,
         take: Take = first_free, notice: Notice | None = None) -> tuple[Lease, Decision]:
    """Leases for the decision `choose()` makes, waiting in FIFO line `line` for up to `wait` s
    while it raises BusyError (every instance at capacity); then that BusyError is raised.

    Only a caller that found no room waits: it joins the line then, and is served in the order of
    arrival (one not first in line does not choose). A caller that finds others waiting joins
    behind them, except with `wait` 0, which never waits and so never queues: it is refused only
    when every instance is at capacity. `line` None: no instance that could be chosen has a
    max_inflight, so none is ever at capacity and nobody waits. `notice`: see `Lease`.
    """
    lease = Lease(store, notice=notice)
    place = _Place(store, line, lease.holder)
    deadline = time.monotonic() + wait
    busy: BusyError | None = None
    try:
        ahead = 0 if line is None or wait <= 0 else store.waiting(line)
        while True:
            if ahead == 0:
                try:
                    decision = choose()
                except BusyError as error:
                    busy = error
                else:
                    if take(lease, decision):
                        return lease, decision
            if time.monotonic() >= deadline:
                raise busy if busy and not ahead else BusyError(
                    "every instance is busy" + (f" and {ahead} earlier caller{'s' if ahead != 1 else ''} waited"
                                                " first" if ahead else ""), Said("raise {wait}, or max_inflight"))
            if not place.joined:  # in line before the first wait; after each wait the place is renewed below
                place.take()
            time.sleep(max(0.0, min(POLL_S, deadline - time.monotonic())))
            ahead = place.take()
    except BaseException:
        lease.release()
        raise
    finally:
        place.leave()


ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class _Ended(KeyboardInterrupt):
    """An ending signal arrived while waiting in line: unwind, leaving the line, then end by it."""


class _Place:
    """A caller's place in FIFO line `line` (None: no line), taken when it first has to wait.

    While it holds one, SIGTERM and SIGHUP unwind the waiter (by default the process would just
    end, and its place would count for LEASE_TTL_S s more); `leave` gives the place up, puts the
    handlers back and delivers the signal again to them (by default: the process ends by it, as a
    supervisor expects). Only the main thread can set handlers; other threads wait without them.
    """

    def __init__(self, store: Store, line: str | None, ticket: str):
        self.store, self.line, self.ticket = store, line, ticket
        self.joined = False
        self.replaced: dict[int, Any] = {}
        self.ended: int | None = None

    def take(self) -> int:
        """Join the line, or stay in it: how many live waiters are ahead."""
        if self.line is None:
            return 0
        if not self.joined and threading.current_thread() is threading.main_thread():
            self.replaced = {signum: signal.signal(signum, self._end) for signum in ENDING}
        self.joined = True
        return self.store.queue(self.line, self.ticket, LEASE_TTL_S)

    def _end(self, signum: int, frame: object) -> None:
        self.ended = signum
        raise _Ended(signum)

    def leave(self) -> None:
        if self.joined and self.line is not None:
            with contextlib.suppress(OllamactlError):
                self.store.leave(self.line, self.ticket)
        for signum, handler in self.replaced.items():
            signal.signal(signum, handler)
        if self.ended is not None:
            signal.raise_signal(self.ended)
