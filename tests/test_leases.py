"""Capacity as a promise: who counts as waiting, lapsed and lost leases, leases that cannot be
recorded, a command that outlives its `exec`, a killed waiter. On both stores (file and Redis)
where the store is involved, with real processes and signals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

import pytest
from cli_helpers import one_error_line, run
from lease_helpers import cached_fleet, finish, inflight, ollamactl, process_state, wait_until

from ollamactl.core.fleet import Fleet
from ollamactl.core.routing import leases, selection
from ollamactl.core.routing.router import Request


@pytest.fixture(params=["file", "redis"])
def store(request):
    """Run the test with the state file, then with a real Redis shared store."""
    if request.param == "redis":
        request.getfixturevalue("redis_store")
    return request.param


def test_wait_0_is_never_refused_while_slots_are_free(store):
    """Issue 22: three instances with max_inflight 10 (30 slots), five `exec --wait 0` at once, five
    rounds: 4 of 25 were refused with "every instance is busy and 1 earlier caller waited first"."""
    ids = cached_fleet({"max_inflight": 10}, {"max_inflight": 10}, {"max_inflight": 10})
    refused = []
    for _ in range(5):
        jobs = [ollamactl("exec", "--wait", "0", "--", "sleep", "0.5") for _ in range(5)]
        refused += [err for code, _, err in map(finish, jobs) if code != 0]
    assert refused == []
    assert inflight(*ids) == dict.fromkeys(ids, 0)


def test_a_caller_being_served_is_not_a_waiter_ahead_of_the_next(store):
    """The race behind the refusals, held open: one caller is taking its lease (free capacity, it
    never waited) while another asks with --wait 0; the second is served too, not told that an
    earlier caller waited first."""
    ids = cached_fleet({"max_inflight": 10})
    fleet = Fleet()
    taking, go_on = threading.Event(), threading.Event()
    real_take = leases.first_free

    def slow_take(lease, decision):
        taking.set()
        go_on.wait(30)
        return real_take(lease, decision)

    first = {}
    thread = threading.Thread(target=lambda: first.update(got=fleet.lease(wait=60, take=slow_take)))
    thread.start()
    try:
        assert taking.wait(30)
        second, _ = Fleet().lease(wait=0)
        with second:
            assert inflight(*ids) == {ids[0]: 1}
    finally:
        go_on.set()
        thread.join(30)
    first["got"][0].release()
    assert inflight(*ids) == {ids[0]: 0}


def _pid_of(path) -> int:
    wait_until(lambda: path.exists() and path.read_text().strip().isdigit(), what=f"{path.name}")
    return int(path.read_text())


def _holding(pidfile) -> list[str]:
    return ["--", "sh", "-c", f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 600"]


def test_a_lapsed_lease_is_taken_again_only_through_the_capacity_check(store, monkeypatch):
    """One heartbeat after the lease lapsed and another holder took the slot: refused, and the
    holder is told; once the slot frees, the next heartbeat takes it again and says so."""
    monkeypatch.setattr(leases, "HEARTBEAT_S", 3600)  # the test beats (`renew`), not the thread
    [gpu] = cached_fleet({"max_inflight": 1})
    fleet = Fleet()
    told = []
    lease = leases.Lease(fleet.store, notice=lambda instance, lost: told.append((instance.id, lost)))
    with lease:
        assert lease.take(fleet.registry().find(gpu))
        fleet.store.release(gpu, lease.holder)  # what a lapse does (the holder stopped past LEASE_TTL_S)
        assert fleet.store.acquire(gpu, 1, "newcomer", 30)
        lease.renew()
        assert inflight(gpu) == {gpu: 1} and told == [(gpu, True)]
        fleet.store.release(gpu, "newcomer")
        lease.renew()
        assert inflight(gpu) == {gpu: 1} and told == [(gpu, True), (gpu, False)]
    assert inflight(gpu) == {gpu: 0}


def test_a_holder_that_lost_its_slot_asks_again_as_often_as_a_waiter(store, monkeypatch):
    """A holder whose lapsed lease was refused asked again only at its next heartbeat (1.5 s), so
    waiters, who look every 0.1 s, took each slot that freed first: a paused exec could starve.
    While refused it now asks every POLL_S: here the heartbeat is made an hour long once the loss
    is seen, so the slot comes back only through that poll."""
    monkeypatch.setattr(leases, "HEARTBEAT_S", 0.05)
    [gpu] = cached_fleet({"max_inflight": 1})
    fleet = Fleet()
    regained = threading.Event()
    lease = leases.Lease(fleet.store, notice=lambda instance, lost: lost or regained.set())
    with lease:
        assert lease.take(fleet.registry().find(gpu))
        wait_until(lambda: fleet.store.release(gpu, lease.holder) or fleet.store.acquire(gpu, 1, "newcomer", 30),
                   what="the slot taken by another holder")
        wait_until(lambda: lease.lost == {gpu}, what="the heartbeat to find the slot taken")
        monkeypatch.setattr(leases, "HEARTBEAT_S", 3600)
        time.sleep(0.3)  # a heartbeat already waiting on the short interval has passed (and been refused)
        fleet.store.release(gpu, "newcomer")
        assert regained.wait(30)
        assert inflight(gpu) == {gpu: 1}


def test_run_and_embed_say_that_their_request_carries_on_when_the_lease_cannot_be_taken_again(store, monkeypatch):
    """A request already on the server cannot be paused: its holder says it carries on over
    max_inflight (never silently), and says so again when the lease is held once more."""
    monkeypatch.setattr(leases, "HEARTBEAT_S", 3600)  # the test beats (`renew`), not the thread
    [gpu] = cached_fleet({"max_inflight": 1})
    fleet = Fleet()
    lease, _ = fleet.lease(Request("chat", "llama3.2"), wait=0)
    with lease:
        fleet.store.release(gpu, lease.holder)
        assert fleet.store.acquire(gpu, 1, "newcomer", 30)
        lease.renew()
        fleet.store.release(gpu, "newcomer")
        lease.renew()
    assert [w for w in fleet.warnings if "lease" in w] == [
        f"the lease on {gpu} lapsed (this process was stopped, or the store lost it, for more than 5 s) and all 1 of"
        " its slots are taken: the request, already on the server, carries on over its max_inflight until one frees",
        f"the lease on {gpu} is held again"]


def test_a_holder_stopped_past_its_lease_pauses_its_command_until_a_slot_frees(store, tmp_path):
    """Issue 23: an exec stopped (SIGSTOP) past its 5 s lease lost the slot to another caller; on
    SIGCONT its heartbeat took the lease back with no capacity check (`busy (2/1 in flight)`)."""
    [gpu] = cached_fleet({"max_inflight": 1})
    first_log, started = tmp_path / "first.err", tmp_path / "first"
    with first_log.open("w") as err:  # the command's own child is paused too: the work is in it
        first = ollamactl("exec", "--", "sh", "-c", f"sleep 600 & echo $! > {started}.tmp; mv {started}.tmp {started};"
                          " wait", stderr=err)
    second = None
    first_command = _pid_of(started)
    try:
        os.kill(first.pid, signal.SIGSTOP)
        wait_until(lambda: inflight(gpu)[gpu] == 0, what="the stopped holder's lease to lapse")
        second = ollamactl("exec", "--wait", "0", *_holding(tmp_path / "second"))
        second_command = _pid_of(tmp_path / "second")
        os.kill(first.pid, signal.SIGCONT)
        wait_until(lambda: process_state(first_command) == "T", what="the first command paused")
        assert inflight(gpu) == {gpu: 1}
        busy = run("exec", "--wait", "0", "--", "true")
        assert busy.exit_code == 3 and "busy (1/1 in flight)" in one_error_line(busy)
        assert process_state(second_command) not in ("T", "")
        second.terminate()
        finish(second)
        wait_until(lambda: process_state(first_command) not in ("T", ""), what="the first command resumed")
        assert inflight(gpu) == {gpu: 1}  # the first holds it again
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(60)
        with contextlib.suppress(ProcessLookupError):
            os.kill(first_command, signal.SIGKILL)  # sh ended by the forwarded SIGTERM leaves its sleep
    said = first_log.read_text()
    assert f"the lease on {gpu} lapsed" in said and "COMMAND is paused" in said and "resumed" in said
    assert inflight(gpu) == {gpu: 0}


def test_a_waiter_killed_with_sigterm_leaves_the_line_at_once(store):
    """Issue 23: a waiting exec killed by SIGTERM kept its place in line for up to 5 s."""
    [gpu] = cached_fleet({"max_inflight": 1})
    fleet = Fleet()
    assert fleet.store.acquire(gpu, 1, "blocker", 60)
    line = selection.pool_key(None, None, "round-robin")
    waiter = ollamactl("exec", "--", "true")
    wait_until(lambda: fleet.store.waiting(line) == 1, what="the waiter in line")
    waiter.send_signal(signal.SIGTERM)
    waiter.wait(60)
    assert waiter.returncode == -signal.SIGTERM  # it still dies by the signal, as a supervisor expects
    assert fleet.store.waiting(line) == 0


@pytest.mark.parametrize("shared", [False, True], ids=["file", "redis-unreachable"])
def test_a_state_dir_that_cannot_record_leases_refuses_limited_instances(shared, isolated_env, monkeypatch):
    """Issue 23: with a read-only state dir, three jobs ran at once on max_inflight 1 with only a
    generic cache warning; so with a Redis store out of reach, whose fallback is that state dir.
    (The test runs as root, for whom permissions do not stop a write: a directory where the lock
    file goes makes every write of the state fail the same way.)"""
    [gpu] = cached_fleet({"max_inflight": 1})
    if shared:
        monkeypatch.setenv("OLLAMACTL_STORE", "redis://127.0.0.1:9/0")  # nothing listens on the discard port
    (isolated_env["state"] / "state.lock").unlink(missing_ok=True)
    (isolated_env["state"] / "state.lock").mkdir()
    result = run("exec", "--", "true")
    assert result.exit_code == 1
    error = result.stderr.splitlines()[-1]  # after the state file's own warning
    assert error.startswith("ollamactl: error: ") and f"cannot record a lease on {gpu}" in error
    assert "max_inflight 1 cannot be kept" in error
    assert run("update", gpu, "--max-inflight", "0").exit_code == 0
    assert run("exec", "--", "true").exit_code == 0  # without a max_inflight there is nothing to keep


def test_after_a_redis_outage_a_holder_takes_its_lease_again_in_redis(redis_store, tmp_path):
    """Issue 23: a holder whose heartbeat hit a Redis outage kept its lease in the local file for
    life, while new processes took the slot in the restarted (empty) Redis: two jobs on max_inflight 1."""
    [gpu] = cached_fleet({"max_inflight": 1})
    err_path = tmp_path / "holder.err"
    with err_path.open("w") as err:
        holder = ollamactl("exec", *_holding(tmp_path / "command"), stderr=err)
    try:
        _pid_of(tmp_path / "command")
        assert inflight(gpu) == {gpu: 1}
        redis_store.stop()
        wait_until(lambda: "Redis store is unavailable" in err_path.read_text(), what="a heartbeat to meet the outage")
        args = redis_store.process.args
        redis_store.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(redis_store.url), what="redis to be back")
        wait_until(lambda: inflight(gpu) == {gpu: 1}, what="the lease taken again in the restarted Redis")
        busy = run("exec", "--wait", "0", "--", "true")
        assert busy.exit_code == 3
    finally:
        holder.terminate()
        finish(holder)
    assert inflight(gpu) == {gpu: 0}


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def test_a_failover_never_overfills_an_instance_that_filled_meanwhile(sim):
    """run's failover took its lease on the next instance without the capacity check ("counted even
    when it overfills"): one that another caller had filled since the choice held 2 of 1. Such an
    instance is now skipped, with the reason among the attempts, and is never sent the request."""
    from fleet_setup import register

    from ollamactl.core.http import AllFailed
    from ollamactl.core.proxy.generate import GenerateRequest

    sims = [sim.add(), sim.add()]
    ids = register(*sims, max_inflight=1)
    fleet = Fleet()
    counts, other = [], []

    def log(line: str) -> None:
        if line.startswith("attempt 1/"):  # the first fails; the other fills after the choice
            tried = 0 if ids[0] in line else 1
            sims[tried].config.fault = "http500"
            other.append(1 - tried)
            assert fleet.store.acquire(ids[other[0]], 1, "another caller", 60)
        if other:
            counts.append(inflight(ids[other[0]])[ids[other[0]]])

    with pytest.raises(AllFailed) as failed:
        fleet.stream(GenerateRequest("llama3.2", "hi", tries=2), lambda raw, obj: False, log=log)
    assert "at its max_inflight" in str(failed.value)
    assert max(counts) == 1
    assert not [r for r in sims[other[0]].requests if r.path == "/api/generate"]
