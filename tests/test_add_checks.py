"""`add` checks what it can: the same server under two spellings, a pasted API path, whether the new
instance answers (a warning by default, a refusal with --check, nothing with --no-check), host names
that do not resolve."""

import socket
import threading

import pytest
from cli_helpers import ok, one_error_line, run

from ollamactl.core.fleet import Fleet
from ollamactl.core.registry import lookup


@pytest.mark.parametrize("spelling", ["localhost:11500", "http://[::1]:11500", "http://127.0.0.1:11500/",
                                      "LOCALHOST:11500", "0.0.0.0:11500", "127.1:11500", "2130706433:11500",
                                      "0x7f000001:11500", "0177.0.0.1:11500", "[::ffff:127.0.0.1]:11500",
                                      "http://127.0.0.1:11500"])
def test_the_same_server_under_another_spelling_is_a_duplicate(spelling):
    ok("add", "127.0.0.1:11500")
    result = run("add", spelling)
    assert result.exit_code == 2
    assert "127-0-0-1-11500" in one_error_line(result)
    assert len(Fleet().instances()) == 1
    ok("add", "127.0.0.1:11501")  # another port is another server
    ok("add", "http://localhost:11500/ollama")  # so is another path


def test_a_numeric_spelling_is_stored_as_its_address_and_the_user_told():
    result = ok("add", "http://0x7f000001:11500")
    assert Fleet().instances()[0].url == "http://127.0.0.1:11500"
    assert "ollamactl: 0x7f000001 is the address 127.0.0.1: stored as http://127.0.0.1:11500" in result.stderr
    ok("add", "127.0.0.1:11501")
    result = ok("update", result.stdout.strip(), "--url", "[::ffff:10.0.0.1]:11500")
    assert "[::ffff:10.0.0.1] is the address 10.0.0.1" in result.stderr
    assert "stored as" not in ok("add", "Gpu1.example.").stderr  # a host name keeps its spelling


@pytest.mark.parametrize(("path", "base"), [("/api", ""), ("/api/generate", ""), ("/v1", ""), ("/api/", ""),
                                            ("/v1/chat/completions", ""), ("/ollama/api/tags", "/ollama")])
def test_a_pasted_api_path_is_dropped_and_the_user_told(sim_instance, path, base):
    result = ok("add", sim_instance.url + path)
    stored = sim_instance.url + base
    assert [i.url for i in Fleet().instances()] == [stored]
    dropped = path.rstrip("/")[len(base):]
    assert (f"ollamactl: warning: dropped {dropped} from {sim_instance.url}{path}: ollamactl adds the API path"
            f" to every request itself") in result.stderr and f"stored as {stored}" in result.stderr
    if not base:  # the probe asked the server's own /api/version, not /api/api/version
        assert "/api/version" in [r.path for r in sim_instance.requests]
        assert "does not answer" not in result.stderr


def test_update_url_drops_a_pasted_api_path_too(sim_instance):
    ok("add", "127.0.0.1:1", "--id", "one", "--no-check")
    result = ok("update", "one", "--url", sim_instance.url + "/api/")
    assert Fleet().find("one").url == sim_instance.url
    assert f"dropped /api from {sim_instance.url}/api/" in result.stderr


def test_add_probes_the_new_instance_and_warns_when_it_does_not_answer_like_ollama(sim):
    good, garbage = sim.add(), sim.add(fault="garbage")
    assert ok("add", good.url).stderr == ""
    assert [r.path for r in good.requests if r.path == "/api/version"] == ["/api/version"]
    assert Fleet().health()[Fleet().instances()[0].id].healthy  # the probe's result is cached
    for url, words in (("http://127.0.0.1:1", "connection refused"), (garbage.url, "not an Ollama server")):
        result = ok("add", url)
        assert result.stdout.strip() == Fleet().instances()[-1].id  # registered all the same
        assert result.stderr == (f"ollamactl: warning: {url} does not answer like Ollama ({words}); registered"
                                 f" anyway, see `ollamactl health {result.stdout.strip()}` once it is up\n")


def test_add_no_check_sends_nothing_and_the_probe_has_a_short_deadline(sim):
    quiet, hung = sim.add(fault="garbage"), sim.add(fault="hang")
    assert ok("add", quiet.url, "--no-check").stderr == ""
    assert quiet.requests == []
    result = ok("add", hung.url)  # the deadline is add's own, not the 5 s of [settings] timeout
    assert f"{hung.url} does not answer like Ollama (timed out after 2.0 s)" in result.stderr


def test_add_check_probes_first(sim_instance, sim):
    result = ok("add", sim_instance.url, "--check")
    assert result.stdout.strip() == Fleet().instances()[0].id
    refused = sim.add(fault="refuse")
    garbage = sim.add(fault="garbage")
    for bad, words in ((refused, "connection refused"), (garbage, "not an Ollama server")):
        result = run("add", bad.url, "--check")
        assert result.exit_code == 1 and result.stdout == ""
        line = one_error_line(result)
        assert f"{bad.url} does not answer like Ollama" in line and words in line
    assert len(Fleet().instances()) == 1


def test_an_unresolvable_host_is_a_warning_not_a_refusal():
    result = ok("add", "nosuchhost.invalid")
    assert result.stdout.strip() == "nosuchhost-invalid-11434"
    assert result.stderr.startswith("ollamactl: warning: host 'nosuchhost.invalid' does not resolve")
    assert "does not resolve" not in ok("add", "gpu7").stderr
    assert "does not resolve" not in ok("add", "10.1.2.3").stderr
    assert ok("add", "nosuchhost2.invalid", "--no-check").stderr == ""  # no lookup either


def test_the_lookup_asks_the_resolver_only_for_names_and_never_waits_long(monkeypatch):
    asked, release = [], threading.Event()

    def resolver(host, port):
        asked.append(host)
        if host == "slow.example":
            release.wait(5)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(lookup, "_resolve", resolver)
    assert lookup.unresolvable_host("http://gpu9:11434") == "gpu9"
    for url in ("http://localhost:1", "http://127.0.0.1:1", "http://[::1]:1", "http://10.0.0.1:1"):
        assert lookup.unresolvable_host(url) is None
    # no verdict: the answer (NONAME, after release or 5 s) came after the 0.2 s deadline had passed
    assert lookup.unresolvable_host("http://slow.example:1", timeout=0.2) is None
    release.set()
    assert asked == ["gpu9", "slow.example"]


def test_a_registry_holding_two_spellings_of_one_server_names_the_entry_and_its_spelling(isolated_env):
    isolated_env["config"].parent.mkdir(parents=True)
    isolated_env["config"].write_text('version = 1\n[[instances]]\nid = "a"\nurl = "http://127.0.0.1:11500"\n'
                                      '[[instances]]\nid = "b"\nurl = "http://127.1:11500"\n')
    line = one_error_line(run("list"))
    assert "instances[1].url" in line and "'http://127.0.0.1:11500' (as written: 'http://127.1:11500')" in line
