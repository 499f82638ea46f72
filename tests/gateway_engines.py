"""The real nginx and HAProxy, run as the current user on free loopback ports with temp files.

Each engine is used exactly as the export's header says: nginx includes the exported file in its
http {} block; HAProxy loads a global file, then the export (`haproxy -f global.cfg -f PATH`).
An engine that is not installed fails the test with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT_S = 15.0
INSTALL_HINT = "install it with `bash scripts/install_test_deps.sh` as root (the README's test command does)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def binary(name: str) -> str:
    """The engine's executable (Debian puts them in /usr/sbin, which a user's PATH may not list)."""
    found = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return found


class Engine:
    """A running gateway process; `stop()` ends it (also called at fixture teardown)."""

    def __init__(self, argv: list[str], port: int, log: Path, env: dict[str, str] | None = None):
        self.argv, self.port, self.log = argv, port, log
        self.process = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepts(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{argv[0]} did not start listening on 127.0.0.1:{port}:\n{log.read_text()}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _checked(argv: list[str], env: dict[str, str] | None = None) -> None:
    checked = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert checked.returncode == 0, f"{' '.join(argv)} failed:\n{checked.stdout}{checked.stderr}"


class Nginx:
    """nginx with a prefix directory of its own; the exported file is included in http {}."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        workdir.mkdir(exist_ok=True)
        self.engines: list[Engine] = []

    def _argv(self, exported: Path) -> list[str]:
        conf = self.workdir / "nginx.conf"
        temp = "\n".join(f"    {kind}_temp_path {self.workdir}/{kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the key hops' sockets
        conf.write_text(f"{user}worker_processes 2;\nevents {{ worker_connections 256; }}\n"
                        f"http {{\n    access_log off;\n{temp}\n    include {exported};\n}}\n")
        return [binary("nginx"), "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "error.log"),
                "-g", f"daemon off; pid {self.workdir}/nginx.pid;"]

    def check(self, exported: Path) -> None:
        _checked([*self._argv(exported), "-t"])

    def start(self, exported: Path, port: int) -> Engine:
        engine = Engine(self._argv(exported), port, self.workdir / "error.log")
        self.engines.append(engine)
        return engine

    def stop(self) -> None:
        for engine in self.engines:
            engine.stop()


class HAProxy:
    """HAProxy loading a minimal global file, then the exported file."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        workdir.mkdir(exist_ok=True)
        self.env = {**os.environ, **env}
        self.engines: list[Engine] = []
        self.global_cfg = workdir / "global.cfg"
        self.global_cfg.write_text("global\n    maxconn 512\n\ndefaults\n    mode http\n    timeout connect 5s\n"
                                   "    timeout client 1m\n    timeout server 1m\n")

    def _argv(self, exported: Path) -> list[str]:
        return [binary("haproxy"), "-f", str(self.global_cfg), "-f", str(exported)]

    def check(self, exported: Path) -> None:
        _checked([*self._argv(exported), "-c"], env=self.env)

    def start(self, exported: Path, port: int) -> Engine:
        engine = Engine([*self._argv(exported), "-db"], port, self.workdir / "haproxy.log", env=self.env)
        self.engines.append(engine)
        return engine

    def stop(self) -> None:
        for engine in self.engines:
            engine.stop()
