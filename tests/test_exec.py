"""`ollamactl exec` and leases: environment, exit status, signals, breaker, capacity, waiting, expiry.

The capacity and expiry tests run on both stores: the state file and a real redis-server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from cli_helpers import one_error_line, run
from lease_helpers import cached_fleet, finish, inflight, lease_expiries, ollamactl, process_state, wait_until

from ollamactl.core.errors import BusyError
from ollamactl.core.fleet import Fleet
from ollamactl.core.proxy import child
from ollamactl.core.routing import leases, selection
from ollamactl.core.routing.router import Request


@pytest.fixture(params=["file", "redis"])
def store(request):
    """Run the test with the state file, then with a real Redis shared store."""
    if request.param == "redis":
        request.getfixturevalue("redis_store")
    return request.param


def test_exec_gives_the_command_its_instance_and_exits_with_its_status():
    [gpu] = cached_fleet({})
    code, out, _ = finish(ollamactl("exec", "-m", "llama3.2", "--", "sh", "-c",
                                    'echo "$OLLAMA_HOST $OLLAMACTL_INSTANCE $OLLAMACTL_URL"; exit 5'))
    assert code == 5
    assert out == f"http://box1:11434 {gpu} http://box1:11434\n"
    assert inflight(gpu) == {gpu: 0}  # released when the command ended


def test_a_failing_command_never_ejects_a_healthy_instance():
    """Issue 22: after nine `exec -- sh -c 'exit 1'` every instance was ejected. A command's status
    says nothing about the server (a grep that matched nothing exits 1): the breaker is left alone."""
    ids = cached_fleet({}, {}, {})
    for _ in range(9):
        assert run("exec", "--", "sh", "-c", "exit 1").exit_code == 1
    assert Fleet().store.read()["breaker"] == {}
    assert sorted(run("pick", "-n", "3").stdout.split()) == [f"http://box{n}:11434" for n in (1, 2, 3)]
    assert inflight(*ids) == dict.fromkeys(ids, 0)


def test_exec_passes_signals_to_the_command():
    cached_fleet({})
    process = ollamactl("exec", "--", "sh", "-c",
                        'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done')
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    code, out, _ = finish(process)
    assert (code, out) == (7, "got TERM\n")


def test_a_signal_that_arrives_while_the_command_starts_still_reaches_it(monkeypatch):
    """The command runs (it may even print) before Popen has returned to exec: a signal sent in that
    moment was dropped, and exec then waited for a command that never got it (seen on a loaded machine)."""
    real_popen = subprocess.Popen

    def popen_then_signal(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)  # its handler runs here, before Popen has returned
        return process

    monkeypatch.setattr(subprocess, "Popen", popen_then_signal)
    assert child.run(["sleep", "10"], os.environ) == 128 + signal.SIGTERM


def test_exec_of_a_missing_command_exits_127_in_one_line():
    cached_fleet({})
    result = run("exec", "--", "no-such-command-ollamactl")
    assert result.exit_code == 127
    assert "command not found: 'no-such-command-ollamactl'" in one_error_line(result)


def test_two_run_at_once_on_different_instances_and_the_third_waits_then_runs(store, tmp_path):
    ids = cached_fleet({"max_inflight": 1}, {"max_inflight": 1})
    log = tmp_path / "log"
    script = (f'echo "start $$ $OLLAMACTL_INSTANCE $(date +%s.%N)" >> {log}; sleep 2;'
              f' echo "end $$ $(date +%s.%N)" >> {log}')
    jobs = [ollamactl("exec", "--", "sh", "-c", script) for _ in range(3)]
    results = [finish(job) for job in jobs]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    starts, ends = {}, {}
    for line in log.read_text().splitlines():
        kind, pid, *rest = line.split()
        if kind == "start":
            starts[pid] = (rest[0], float(rest[1]))
        else:
            ends[pid] = float(rest[0])
    first, second, third = sorted(starts, key=lambda pid: starts[pid][1])
    assert {starts[first][0], starts[second][0]} == set(ids)  # two at once, on different instances
    assert starts[second][1] < ends[first]  # ... really at once
    assert starts[third][1] >= min(ends[first], ends[second])  # the third waited for a free one
    assert inflight(*ids) == {ids[0]: 0, ids[1]: 0}


def test_wait_0_exits_3_at_once_when_every_instance_is_busy(store):
    ids = cached_fleet({"max_inflight": 1}, {"max_inflight": 1})
    holders = [ollamactl("exec", "--", "sleep", "30") for _ in range(2)]
    try:
        wait_until(lambda: inflight(*ids) == {ids[0]: 1, ids[1]: 1}, what="both leases")
        result = run("exec", "--wait", "0", "--", "true")
        assert result.exit_code == 3
        assert "all 2 instances busy" in one_error_line(result)
        assert all(holder.poll() is None for holder in holders)  # it did not wait for them
    finally:
        for holder in holders:
            holder.terminate()
            finish(holder)
    assert inflight(*ids) == {ids[0]: 0, ids[1]: 0}


def test_a_sigkilled_exec_frees_its_lease_within_the_documented_expiry_and_takes_its_command_with_it(
        store, tmp_path):
    """Issue 23: the lease freed as promised, but the command kept running, unleased."""
    [gpu] = cached_fleet({"max_inflight": 1})
    pidfile = tmp_path / "child.pid"
    holder = ollamactl("exec", "--", "sh", "-c", f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 60")
    try:
        wait_until(lambda: inflight(gpu)[gpu] == 1 and pidfile.exists(), what="the lease")
        assert len(lease_expiries(gpu)) == 1
        holder.kill()  # SIGKILL: no chance to release
        holder.wait()
        killed = time.time()
        wait_until(lambda: process_state(int(pidfile.read_text())) in ("", "Z"), what="the command to die with exec")
        assert all(until <= killed + leases.LEASE_TTL_S + 0.01 for until in lease_expiries(gpu))  # not renewed
        wait_until(lambda: inflight(gpu)[gpu] == 0, timeout=leases.LEASE_TTL_S + 30, what="expiry")
        assert run("exec", "--wait", "0", "--", "true").exit_code == 0  # the capacity is back
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_pick_never_waits_and_explains_which_are_busy():
    ids = cached_fleet({"max_inflight": 1}, {"max_inflight": 2})
    store = Fleet().store
    assert store.acquire(ids[0], 1, "someone", 30)
    assert run("pick").stdout.strip() == "http://box2:11434"
    assert store.acquire(ids[1], 2, "a", 30) and store.acquire(ids[1], 2, "b", 30)
    result = subprocess.run([sys.executable, "-m", "ollamactl", "pick", "--explain"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 3
    assert "all 2 instances busy" in result.stderr
    assert f"{ids[0]}: busy (1/1 in flight)" in result.stderr and f"{ids[1]}: busy (2/2 in flight)" in result.stderr


def test_least_busy_sends_work_where_the_fewest_leases_are():
    ids = cached_fleet({}, {}, {})
    store = Fleet().store
    for holder in ("a", "b"):
        store.acquire(ids[0], None, holder, 30)
    store.acquire(ids[1], None, "c", 30)
    assert run("pick", "-s", "least-busy").stdout.strip() == "http://box3:11434"
    store.acquire(ids[2], None, "d", 30)  # now 2, 1, 1: ties go round-robin between box2 and box3
    picks = run("pick", "-s", "least-busy", "-n", "2").stdout.split()
    assert sorted(picks) == ["http://box2:11434", "http://box3:11434"]


def test_waiters_are_served_in_the_order_they_arrived(tmp_path):
    [gpu] = cached_fleet({"max_inflight": 1})
    store = Fleet().store
    assert store.acquire(gpu, 1, "blocker", 30)
    log = tmp_path / "order"
    first = ollamactl("exec", "--", "sh", "-c", f"echo first >> {log}")
    wait_until(lambda: bool(store.read()["queues"]), what="the first waiter in line")
    second = ollamactl("exec", "--", "sh", "-c", f"echo second >> {log}")
    wait_until(lambda: sum(len(line) for line in store.read()["queues"].values()) == 2, what="the second waiter")
    store.release(gpu, "blocker")
    assert finish(first)[0] == 0 and finish(second)[0] == 0
    assert log.read_text().split() == ["first", "second"]


def test_with_no_max_inflight_nobody_waits_in_line(store):
    """Without a max_inflight no instance is ever full, so the FIFO line is not joined: a caller left
    in it (one that waited while the registry still had a limit) holds nobody up. With limits, a
    caller that may wait queues behind it; one with --wait 0 never waits, so it is served while
    there is room (issue 22)."""
    ids = cached_fleet({}, {})
    fleet = Fleet()
    for line in (selection.pool_key("chat", "llama3.2", "round-robin"), f"instance|{ids[0]}"):
        assert fleet.store.queue(line, "left-in-line", 30) == 0  # someone is in line
    for named in (None, ids[0]):
        lease, _ = fleet.lease(Request("chat", "llama3.2"), instance=named, wait=0)
        with lease:
            wait_until(lambda held=lease.instance.id: inflight(*ids)[held] == 1, what="the lease")
    fleet.update(ids[0], max_inflight=4)
    fleet.update(ids[1], max_inflight=4)
    for named in (None, ids[0]):
        with pytest.raises(BusyError, match="1 earlier caller waited first"):
            Fleet().lease(Request("chat", "llama3.2"), instance=named, wait=0.2)
        lease, _ = Fleet().lease(Request("chat", "llama3.2"), instance=named, wait=0)
        lease.release()


def test_a_release_during_a_renewal_stays_released(monkeypatch, tmp_path):
    """The heartbeat's renewal takes a lease again when it finds none, so a release that slipped in
    while a renewal was under way came undone: the instance counted a lease nobody held for 5 s
    (least-busy and max_inflight saw it). A release now waits for the renewal, then wins."""
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import FileStore

    renewing = threading.Event()

    class SlowRenewals(FileStore):
        def renew(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> int:
            renewing.set()
            time.sleep(0.3)  # the release is asked for meanwhile
            return super().renew(instance_id, limit, holder, ttl)

    monkeypatch.setattr(leases, "HEARTBEAT_S", 0.01)
    store = SlowRenewals(tmp_path)
    lease = leases.Lease(store)
    limited = Instance(id="gpu", name="gpu", url="http://127.0.0.1:9", max_inflight=2)  # the lease is written at once
    assert lease.take(limited)
    assert renewing.wait(5)
    lease.release()
    time.sleep(0.5)  # any renewal under way has ended by now
    assert store.inflight(["gpu"]) == {"gpu": 0}


def test_a_release_before_the_leases_write_stays_released(monkeypatch, tmp_path):
    """A lease without a max_inflight is written from a thread of its own while run's request goes
    out; a release that comes before that write (a quick answer, a Ctrl-C) must not be undone by it."""
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import FileStore

    written = threading.Event()
    write = leases.Lease._acquire

    def late_write(lease: leases.Lease, instance: Instance) -> None:
        time.sleep(0.3)  # the release comes first
        write(lease, instance)
        written.set()

    monkeypatch.setattr(leases.Lease, "_acquire", late_write)
    store = FileStore(tmp_path)
    with leases.Lease(store) as lease:
        assert lease.take(Instance(id="cpu", name="cpu", url="http://127.0.0.1:9"))  # no max_inflight
    assert written.wait(5)
    assert store.inflight(["cpu"]) == {"cpu": 0}


def test_a_ctrl_c_while_the_lease_is_being_written_leaves_no_lease(tmp_path):
    """A Ctrl-C that lands once the store has written the lease but before `Lease.take` recorded it
    (exec, run and embed take theirs so) releases it too: it stayed counted against the instance's
    max_inflight for LEASE_TTL_S s, by nobody."""
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import FileStore

    class InterruptedAfterTheWrite(FileStore):
        def acquire(self, instance_id: str, limit: int | None, holder: str, ttl: float) -> bool:
            super().acquire(instance_id, limit, holder, ttl)
            raise KeyboardInterrupt

    store = InterruptedAfterTheWrite(tmp_path)
    limited = Instance(id="gpu", name="gpu", url="http://127.0.0.1:9", max_inflight=2)
    decision = selection_of(limited)
    with pytest.raises(KeyboardInterrupt):
        leases.hold(store, lambda: decision, None, 0)
    assert store.inflight(["gpu"]) == {"gpu": 0}


def test_a_second_ctrl_c_during_the_release_still_releases(tmp_path):
    """Ctrl-C pressed twice: the second lands while the first one's release is writing the state
    file (`timeout -s INT 0.7 ollamactl exec -m llama3.2 -- sleep 10` does it: timeout signals
    exec, then its whole process group), and the lease stayed counted for LEASE_TTL_S s."""
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import FileStore

    class InterruptedOnce(FileStore):
        interrupted = False

        def release(self, instance_id: str, holder: str) -> None:
            if not self.interrupted:
                InterruptedOnce.interrupted = True
                raise KeyboardInterrupt
            super().release(instance_id, holder)

    store = InterruptedOnce(tmp_path)
    lease = leases.Lease(store)
    assert lease.take(Instance(id="gpu", name="gpu", url="http://127.0.0.1:9", max_inflight=2))
    with pytest.raises(KeyboardInterrupt):
        lease.release()
    assert store.inflight(["gpu"]) == {"gpu": 0}


def selection_of(instance):
    """A decision that picks `instance` (what `leases.hold` asks its chooser for)."""
    class Picked:
        picks = [instance]

        def failover_order(self, first=None):
            return [instance]

    return Picked()


def test_run_holds_a_lease_and_gives_up_at_once_with_wait_0(sim_instance):
    current = Fleet()
    instance = current.add(sim_instance.url, max_inflight=1)
    current.check()
    assert run("run", "llama3.2", "hi").exit_code == 0
    assert current.store.inflight([instance.id]) == {instance.id: 0}
    current.store.acquire(instance.id, 1, "someone", 30)
    result = run("run", "llama3.2", "hi", "--wait", "0")
    assert result.exit_code == 3 and "all 1 instance busy" in one_error_line(result)
    embedded = run("embed", "llama3.2", "hi", "--wait", "0")
    assert embedded.exit_code == 3
