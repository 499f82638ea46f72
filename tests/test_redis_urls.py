"""The Redis store's URLs against real redis-servers: unix sockets and TLS work, and a password, in
whichever form it was given, never shows (paths, paths --json, the health header, warnings, errors)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import ok, run
from redis_fixtures import looking_in

PASSWORD = "pw-s3cret-42"


def ollamactl(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it (the launcher's fast routes included)."""
    return subprocess.run([sys.executable, "-m", "ollamactl", *args], capture_output=True, text=True, timeout=60)


def test_a_unix_socket_url_serves_every_kind_of_command(redis_server_with, sim_instance, monkeypatch):
    server = redis_server_with(unix=True)
    monkeypatch.setenv("OLLAMACTL_STORE", f"{server.unix_url}?db=3&prefix=u:")
    ok("add", sim_instance.url)
    assert json.loads(ok("paths", "--json").stdout)["store"] == f"redis {server.unix_url}?db=3 (key prefix u:)"
    checked = ok("health")
    assert not checked.stderr
    for args in (("pick",), ("pick", "--explain"), ("list",), ("exec", "--", sys.executable, "-c", "pass")):
        done = ollamactl(*args)
        assert done.returncode == 0 and "warning" not in done.stderr and "Traceback" not in done.stderr, (args, done)
    assert ollamactl("pick").stdout.strip() == sim_instance.url
    inside = looking_in(unix_socket_path=server.socket_path, db=3, decode_responses=True)
    assert inside.smembers("u:health-ids") and inside.hgetall("u:cursors")  # the state went there, db 3


def test_a_unix_socket_that_is_not_there_is_the_local_fallback_with_one_warning(tmp_path, monkeypatch, sim_instance):
    ok("add", sim_instance.url)
    monkeypatch.setenv("OLLAMACTL_STORE", f"unix://{tmp_path}/missing.sock")
    done = ollamactl("pick")
    assert done.returncode == 0 and done.stdout.strip() == sim_instance.url
    assert len(done.stderr.splitlines()) == 1 and "the Redis store is unavailable" in done.stderr


def test_a_rediss_url_speaks_tls_and_checks_the_certificate(redis_server_with, sim_instance, monkeypatch):
    server = redis_server_with(tls=True)
    monkeypatch.setenv("OLLAMACTL_STORE", server.tls_url)
    ok("add", sim_instance.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate))  # the test's CA: trusted
    trusted = [ollamactl("health"), ollamactl("pick")]
    assert all(done.returncode == 0 and not done.stderr for done in trusted), [done.stderr for done in trusted]
    assert trusted[1].stdout.strip() == sim_instance.url
    assert looking_in(port=server.port).exists("ollamactl:health-ids")  # the state went through TLS
    monkeypatch.delenv("SSL_CERT_FILE")
    untrusted = ollamactl("pick")  # the certificate is checked: not trusted now, so the local file
    assert untrusted.returncode == 0 and "the Redis store is unavailable" in untrusted.stderr
    assert "certificate" in untrusted.stderr


@pytest.mark.parametrize("form", ["userinfo", "user-and-password", "query", "unix-query", "unix-userinfo"])
@pytest.mark.parametrize("given", ["environment", "setting"])
def test_a_password_never_shows_in_any_form(redis_server_with, isolated_env, sim_instance, monkeypatch, form, given):
    server = redis_server_with(unix=True, password=PASSWORD)
    hostport = f"127.0.0.1:{server.port}"
    url = {"userinfo": f"redis://:{PASSWORD}@{hostport}/0", "user-and-password": f"redis://default:{PASSWORD}@{hostport}",
           "query": f"redis://{hostport}/0?password={PASSWORD}",
           "unix-query": f"{server.unix_url}?password={PASSWORD}",
           "unix-userinfo": f"unix://:{PASSWORD}@{server.socket_path}"}[form]
    ok("add", sim_instance.url)
    if given == "environment":
        monkeypatch.setenv("OLLAMACTL_STORE", url)
    else:
        config = isolated_env["config"]
        config.write_text(f'[settings]\nstore = "{url}"\n' + config.read_text())
    said = [ollamactl("paths"), ollamactl("paths", "--json"), ollamactl("health")]
    assert all(done.returncode == 0 and not done.stderr for done in said), [done.stderr for done in said]
    assert all("***" in done.stdout for done in said)  # the store is named, its password masked
    assert "state store: redis " in said[2].stdout
    assert looking_in(host="127.0.0.1", port=server.port, password=PASSWORD).exists("ollamactl:health-ids")
    # it logged in: the probe's result is in Redis
    server.stop()  # now every command warns that the store is unavailable, naming it
    said += [ollamactl("pick"), ollamactl("health"), ollamactl("paths")]
    assert "the Redis store is unavailable" in said[3].stderr
    for done in said:
        assert PASSWORD not in done.stdout + done.stderr


def test_a_wrong_password_is_the_fallback_and_an_unusable_url_an_error_both_masked(redis_server_with, monkeypatch,
                                                                                   sim_instance):
    server = redis_server_with(password=PASSWORD)
    ok("add", sim_instance.url)
    monkeypatch.setenv("OLLAMACTL_STORE", f"redis://127.0.0.1:{server.port}/0?password=not-{PASSWORD}")
    done = ollamactl("pick")
    assert done.returncode == 0 and "the Redis store is unavailable" in done.stderr and "***" in done.stderr
    assert PASSWORD not in done.stderr
    for url in (f"redis://:{PASSWORD}@127.0.0.1:port/0", f"redis://127.0.0.1/x?password={PASSWORD}",
                f"redis:/{PASSWORD}@host", f"unix://:{PASSWORD}@host/sock"):
        monkeypatch.setenv("OLLAMACTL_STORE", url)
        result = run("paths")
        assert result.exit_code == 2 and "OLLAMACTL_STORE" in result.stderr, (url, result.stderr)
        assert PASSWORD not in result.stderr
