"""`ollamactl simulate` as a process: what it registers goes away on stop (unless --keep), and a
refused instance is brought back through a sibling's control endpoint."""

import os
import signal
import subprocess
import sys

import httpx
import pytest

from ollamactl.cli.integrations import simulate_cmd
from ollamactl.core.fleet import Fleet


def start(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "simulate", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    count = int(args[args.index("--instances") + 1])
    urls = [process.stdout.readline().strip() for _ in range(count)]
    process.said = []
    while not (process.said and "press Ctrl-C" in process.said[-1]):  # ready: registered, serving
        process.said.append(process.stderr.readline())
        assert process.said[-1], "simulate ended early"
    return process, urls


def stop(process, sig=signal.SIGINT):
    process.send_signal(sig)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return "".join(process.said) + err


def test_stop_unregisters_what_it_registered_but_not_what_was_there():
    fleet = Fleet()
    fleet.add("gpu1")
    process, urls = start("--instances", "2", "--register")
    assert [i.name for i in fleet.instances()] == ["gpu1-11434", "sim-1", "sim-2"]
    ids = [i.id for i in fleet.instances()][1:]
    err = stop(process)
    assert f"unregistered {ids[0]}, {ids[1]} (pass --keep to keep them)" in err
    assert [i.id for i in fleet.instances()] == ["gpu1-11434"]


def test_keep_leaves_them_registered_and_sigterm_stops_cleanly():
    process, urls = start("--instances", "2", "--register", "--keep")
    err = stop(process, signal.SIGTERM)
    assert "unregistered" not in err and "simulator stopped" in err
    assert [i.url for i in Fleet().instances()] == urls


def test_an_entry_reused_from_before_stays_registered():
    process, urls = start("--instances", "1", "--register", "--keep")
    stop(process)
    assert simulate_cmd._register(urls)[1] == {}  # the same URL again: reused, nothing added
    process, again = start("--instances", "1", "--register", "--base-port", urls[0].rsplit(":", 1)[1])
    err = stop(process)
    assert "reusing it (it stays registered)" in err and "unregistered" not in err
    assert [i.url for i in Fleet().instances()] == urls


def test_a_refused_instance_comes_back_through_a_sibling(sim):
    first, second = sim.add(), sim.add()
    httpx.post(f"{second.url}/_sim/config", json={"fault": "refuse"})
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{second.url}/api/version")
    answer = httpx.post(f"{first.url}/_sim/config/{second.port}", json={"fault": None})
    assert answer.status_code == 200 and answer.json()["fault"] is None
    assert httpx.get(f"{second.url}/api/version").status_code == 200
    assert httpx.post(f"{first.url}/_sim/config/1", json={}).status_code == 404


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_closing_its_terminal_or_killing_it_unregisters_as_ctrl_c_does(sig):
    """Closing the terminal sends SIGHUP and takes stdout and stderr away; `kill` sends SIGTERM:
    either way the entries it added go, so the next `simulate --register` gets sim-1.. again."""
    process, urls = start("--instances", "2", "--register")
    assert [i.name for i in Fleet().instances()] == ["sim-1", "sim-2"]
    if sig == signal.SIGHUP:
        process.stdout.close()
        process.stderr.close()
    process.send_signal(sig)
    assert process.wait(timeout=15) == 0
    assert Fleet().instances() == ()
    process, again = start("--instances", "1", "--register")
    assert [i.name for i in Fleet().instances()] == ["sim-1"]
    stop(process)
