"""`ollamactl discover`: Ollama servers found on the loopback hosts and ports named, registered once.

Every address scanned here is in 127.0.0.0/8 (on Linux all of it routes to `lo`): simulated servers
on 127.0.0.2 and 127.0.0.3, a web server that is not Ollama on 127.0.0.4 and a socket that accepts
and never answers on 127.0.0.5.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cli_helpers import ok, one_error_line, run

from ollamactl.core import discover
from ollamactl.core.errors import UsageError


class _WebPage(BaseHTTPRequestHandler):
    """A web server that is not Ollama: 200 and a page of HTML for every path."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class HungSocket:
    """Accepts connections on (host, port) and never says a word; counts what it accepted."""

    def __init__(self, host: str, port: int):
        self.listener = socket.create_server((host, port))
        self.accepted: list[socket.socket] = []
        self.twice = threading.Event()  # a connect check, then the probe's own connection
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)
            if len(self.accepted) >= 2:
                self.twice.set()

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def spread_fleet(sim):
    """Ollama on 127.0.0.2 (two ports) and 127.0.0.3, a web page on .4, a hung socket on .5."""
    first = sim.add(host="127.0.0.2", name="a")
    second = sim.add(host="127.0.0.2", name="b")
    third = sim.add(host="127.0.0.3", port=first.port, name="c")
    web = ThreadingHTTPServer(("127.0.0.4", first.port), _WebPage)
    threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    hung = HungSocket("127.0.0.5", second.port)
    in_address_order = sorted([first, second, third], key=lambda server: (server.host, server.port))
    yield {"ports": (first.port, second.port), "urls": [server.url for server in in_address_order], "hung": hung}
    web.shutdown()
    web.server_close()
    hung.close()


def _scan_args(fleet_info, *extra: str) -> list[str]:
    first, second = fleet_info["ports"]
    return ["discover", "127.0.0.0/29", "--port", str(first), "--port", str(second), "--timeout", "1", *extra]


def test_only_the_ollama_servers_are_reported_with_what_they_hold(spread_fleet):
    result = ok(*_scan_args(spread_fleet, "--json"))
    found = json.loads(result.stdout)
    assert [item["url"] for item in found] == spread_fleet["urls"]  # not the web page, not the hung socket
    for item in found:
        assert item["version"] == "0.12.6"
        assert "llama3.2:latest" in item["models"] and item["loaded"] == ["llama3.2:latest"]
        assert item["registered"] is False and item["instance"] is None and item["added"] is False
    assert spread_fleet["hung"].accepted, "the hung socket was tried (and cost no more than --timeout)"
    assert ok("list", "--json").stdout.strip() == "[]"  # off a terminal, without --add: only listed


def test_add_registers_each_new_server_once_and_a_second_run_adds_nothing(spread_fleet, isolated_env):
    result = ok(*_scan_args(spread_fleet, "--add"))
    registered = json.loads(ok("list", "--json").stdout)
    assert sorted(i["url"] for i in registered) == sorted(spread_fleet["urls"])
    first, second = spread_fleet["ports"]
    # named from the reverse lookup where there is one (see conftest), else the address; -PORT off 11434
    assert {i["url"]: i["name"] for i in registered} == {
        f"http://127.0.0.2:{first}": f"gpu-box.lan-{first}",
        f"http://127.0.0.2:{second}": f"gpu-box.lan-{second}",
        f"http://127.0.0.3:{first}": f"127.0.0.3-{first}",
    }
    assert "3 registered now" in result.stderr
    before = isolated_env["config"].read_bytes()
    again = ok(*_scan_args(spread_fleet, "--add", "--json"))
    assert isolated_env["config"].read_bytes() == before
    assert all(item["registered"] and not item["added"] for item in json.loads(again.stdout))


def test_a_server_registered_under_another_spelling_counts_as_registered(sim):
    server = sim.add()  # 127.0.0.1
    ok("add", f"localhost:{server.port}", "--name", "mine")
    [item] = json.loads(ok("discover", f"127.0.0.1:{server.port}", "--json").stdout)
    assert item["registered"] is True and item["instance"] == f"localhost-{server.port}"
    ok("discover", f"127.0.0.1:{server.port}", "--add")
    assert len(json.loads(ok("list", "--json").stdout)) == 1


def test_no_target_means_localhost_and_the_host_of_ollama_host(sim, monkeypatch):
    local, named = sim.add(), sim.add(host="127.0.0.3")
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.3:{named.port}")
    found = json.loads(ok("discover", "--port", str(local.port), "--json").stdout)
    assert [item["url"] for item in found] == [named.url, f"http://localhost:{local.port}"]


def test_an_empty_range_of_1024_addresses_is_scanned_whole_and_exits_3(fleet):
    port = _unused_port()
    progress: list[tuple[int, int]] = []
    assert fleet.discover(["127.0.0.0/22"], ports=[port], on_progress=lambda *done: progress.append(done)) == []
    assert progress[-1] == (1022, 1022) and len(progress) == 1022
    result = run("discover", "127.0.0.0/22", "--port", str(port))
    assert result.exit_code == 3 and "no Ollama server answered" in result.stderr
    assert "scanning" not in result.stderr  # progress is for a terminal, never a pipe


@pytest.mark.parametrize("target", ["10.0.0.0/33", "not a host", "gpu1:99999", "[fe80::1", "http://x/?q", ""])
def test_a_bad_target_is_named_and_exits_2(target):
    result = run("discover", target)
    assert result.exit_code == 2
    named = f"target {target!r}" if target else "a target is empty"  # repr("")[1:-1] is in every line
    assert named in one_error_line(result)


def test_more_than_a_slash_16_is_refused_without_yes():
    result = run("discover", "127.0.0.0/15")
    assert result.exit_code == 2 and "more than a /16" in one_error_line(result) and "--yes" in result.stderr
    discover.Plan([discover.parse_target("127.0.0.0/15")], []).check_size(yes=True)  # --yes: allowed
    with pytest.raises(UsageError, match="more than a /8"):
        discover.Plan([discover.parse_target("fd00::/64")], []).check_size(yes=True)


def test_targets_and_ports_stand_for_the_urls_a_user_means():
    targets = ("127.0.0.0/30", "gpu1:8080", "[fe80::1]", "https://box/ollama", "127.0.0.1")
    plan = discover.Plan([discover.parse_target(text) for text in targets], [11434, 11500])
    assert list(plan.urls()) == [
        "http://127.0.0.1:11434", "http://127.0.0.1:11500", "http://127.0.0.2:11434", "http://127.0.0.2:11500",
        "http://gpu1:8080", "http://[fe80::1]:11434", "http://[fe80::1]:11500", "https://box:443/ollama",
        None, None,  # 127.0.0.1 again: inside the block already named, so not tried twice
    ]  # network and broadcast addresses are not hosts
    assert plan.total == 10 and plan.addresses == 6
    with pytest.raises(UsageError, match="port 0"):
        discover.Plan([], [0])


def test_names_come_from_the_host_with_a_port_suffix_and_stay_unique():
    names = {"10.0.0.5": "gpu1"}.get
    assert discover.suggest_name("http://10.0.0.5:11434", set(), names) == "gpu1"
    assert discover.suggest_name("http://10.0.0.5:11500", set(), names) == "gpu1-11500"
    assert discover.suggest_name("http://10.0.0.6:11434", {"10.0.0.6"}, names) == "10.0.0.6-2"
    assert discover.suggest_name("http://[fd00::1]:11434", set(), names) == "fd00::1"


def test_library_refuses_a_single_string_and_bad_numbers(fleet):
    with pytest.raises(UsageError, match="one string"):
        fleet.discover("127.0.0.0/30")
    with pytest.raises(UsageError, match="timeout"):
        fleet.discover(["127.0.0.1"], timeout=float("nan"))


def test_ctrl_c_exits_130_and_keeps_what_was_found(sim, tmp_path):
    server = sim.add(host="127.0.0.2")
    hung = HungSocket("127.0.0.3", server.port)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "ollamactl", "discover", "127.0.0.0/29", "--port", str(server.port),
             "--concurrency", "1", "--timeout", "60", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        assert hung.twice.wait(60), "the scan reached the hung socket (after 127.0.0.2, one at a time)"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        hung.close()
    assert process.returncode == 130, stderr
    assert [item["url"] for item in json.loads(stdout)] == [server.url]
    assert "Traceback" not in stderr and "interrupted" in stderr


def test_simulate_listens_on_the_address_given(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "ollamactl", "simulate", "-n", "1", "--host", "127.0.0.6"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.6:")
        [item] = json.loads(ok("discover", url.partition("://")[2], "--json").stdout)
        assert item["url"] == url
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    bad = run("simulate", "--host", "gpu1")
    assert bad.exit_code == 2 and "'gpu1' is not an IP address" in one_error_line(bad)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
