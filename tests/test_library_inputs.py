"""The library refuses bad arguments as the CLI does (an InvalidValue naming the parameter, before any
request is sent), takes model names as people type them, and exports its names without side effects."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_helpers import one_error_line, run

import ollamactl
from ollamactl import EmbedRequest, Fleet, GenerateRequest, InvalidValue, OllamactlError, UsageError

NAN = float("nan")
BAD_CALLS = [
    ("remove()", lambda f: f.remove(), "refs"),
    ("enable()", lambda f: f.enable(), "refs"),
    ("disable()", lambda f: f.disable(), "refs"),
    ("find(None)", lambda f: f.find(None), "ref"),
    ("find(5)", lambda f: f.find(5), "ref"),
    ("update(None)", lambda f: f.update(None, weight=2), "ref"),
    ("remove(None)", lambda f: f.remove("one", None), "refs"),
    ("check([])", lambda f: f.check(["one"]), "ref"),
    ("add(5)", lambda f: f.add(5), "url"),
    ("add(name=5)", lambda f: f.add("127.0.0.1:9", name=5), "name"),
    ("add(id=5)", lambda f: f.add("127.0.0.1:9", id=5), "id"),
    ("add(api_key_env=5)", lambda f: f.add("127.0.0.1:9", api_key_env=5), "api_key_env"),
    ("add(api_key=5)", lambda f: f.add("127.0.0.1:9", api_key=5), "api_key"),
    ("add(enabled='no')", lambda f: f.add("127.0.0.1:9", enabled="no"), "enabled"),
    ("add(key and variable)", lambda f: f.add("127.0.0.1:9", api_key_env="K", api_key="sk-1"), "api_key_env"),
    ("update(key and variable)", lambda f: f.update("one", api_key_env="K", api_key="sk-1"), "api_key_env"),
    ("check(timeout=nan)", lambda f: f.check(timeout=NAN), "timeout"),
    ("check(timeout=-1)", lambda f: f.check(timeout=-1), "timeout"),
    ("check(timeout='5')", lambda f: f.check(timeout="5"), "timeout"),
    ("watch(interval=0)", lambda f: f.watch(f.instances(), interval=0, on_start=print, on_result=print,
                                            on_tick=print), "interval"),
    ("pick(count=0)", lambda f: f.pick(count=0), "count"),
    ("pick(model=5)", lambda f: f.pick(model=5), "model"),
    ("pick(key=5)", lambda f: f.pick(key=5), "key"),
    ("generate(tries=0)", lambda f: f.generate("llama3.2", "hi", tries=0), "tries"),
    ("generate(model=None)", lambda f: f.generate(None, "hi"), "model"),
    ("generate(prompt=None)", lambda f: f.generate("llama3.2", None), "prompt"),
    ("generate(bogus=1)", lambda f: f.generate("llama3.2", "hi", bogus=1), "bogus"),
    ("stream(dict)", lambda f: f.stream({"model": "llama3.2", "prompt": "hi"}, print), "request"),
    ("stream(tries=0)", lambda f: f.stream(GenerateRequest("llama3.2", "hi", tries=0), print), "tries"),
    ("embed(per_instance=0)", lambda f: f.embed("nomic-embed-text", ["x"], per_instance=0), "per_instance"),
    ("embed(batch_size=0)", lambda f: f.embed("nomic-embed-text", ["x"], batch_size=0), "batch_size"),
    ("embed('text')", lambda f: f.embed("nomic-embed-text", "one text"), "texts"),
    ("embed([5])", lambda f: f.embed("nomic-embed-text", ["x", 5]), "texts"),  # was sent: HTTP 400 from the server
    ("embed(bogus=1)", lambda f: f.embed("nomic-embed-text", ["x"], bogus=1), "bogus"),
    ("embed_batches(str)", lambda f: f.embed_batches("nomic-embed-text", [["x"]], print), "request"),
    ("embed_batches(per_instance=0)",
     lambda f: f.embed_batches(EmbedRequest("nomic-embed-text", per_instance=0), [["x"]], print), "per_instance"),
    ("lease(wait=nan)", lambda f: f.lease(wait=NAN), "wait"),
    ("lease('chat')", lambda f: f.lease("chat"), "request"),
    ("pull(concurrency=0)", lambda f: f.pull([(f.find("one"), "llama3.2")], concurrency=0), "concurrency"),
    ("delete_model(None)", lambda f: f.delete_model(None, f.instances()), "model"),
    ("warm('a b')", lambda f: f.warm("a b", f.instances(), "chat"), "model"),
    ("update(bogus=1)", lambda f: f.update("one", bogus=1), "bogus"),
    ("add(bogus=1)", lambda f: f.add("127.0.0.1:9", bogus=1), "bogus"),
    ("export(model=5)", lambda f: f.export("json", model=5), "model"),
    ("export(listen=5)", lambda f: f.export("nginx", listen=5), "listen"),  # these three: a bare
    ("export(output=5)", lambda f: f.export("nginx", output=5), "output"),  # AttributeError or
    ("export(secrets_file=5)", lambda f: f.export("nginx", secrets_file=5), "secrets_file"),  # TypeError
    ("select(None)", lambda f: f.select(None), "request"),
    ("run_command('ls')", lambda f: f.run_command("ls"), "command"),
    ("run_command([])", lambda f: f.run_command([]), "command"),
    # a keyword of the wrong type, which was sent as given (a bool from its truth, anything else to the wire)
    ("generate(chat='yes')", lambda f: f.generate("llama3.2", "hi", chat="yes"), "chat"),
    ("generate(system=5)", lambda f: f.generate("llama3.2", "hi", system=5), "system"),
    ("generate(options='x')", lambda f: f.generate("llama3.2", "hi", options="x"), "options"),
    ("generate(think='no')", lambda f: f.generate("llama3.2", "hi", think="no"), "think"),
    ("generate(instance=3)", lambda f: f.generate("llama3.2", "hi", instance=3), "instance"),
    ("generate(timeouts=5)", lambda f: f.generate("llama3.2", "hi", timeouts=5), "timeouts"),
    ("stream(strict='no')", lambda f: f.stream(GenerateRequest("llama3.2", "hi", strict="no"), print), "strict"),
    ("embed(allow_mixed='no')", lambda f: f.embed("nomic-embed-text", ["x"], allow_mixed="no"), "allow_mixed"),
    ("embed(timeouts=(1, 2))", lambda f: f.embed("nomic-embed-text", ["x"], timeouts=(1, 2)), "timeouts"),
    ("add(check='no')", lambda f: f.add("127.0.0.1:9", check="no"), "check"),
    ("generate(wait=-1)", lambda f: f.generate("llama3.2", "hi", wait=-1), "wait"),  # at the call, not the 1st next()
    # a whole float where a count is meant: a TypeError from deep inside (a slice, a range) before
    ("generate(tries=2.0)", lambda f: f.generate("llama3.2", "hi", tries=2.0), "tries"),
    ("embed(per_instance=2.0)", lambda f: f.embed("nomic-embed-text", ["x"], per_instance=2.0), "per_instance"),
    ("pick(count=2.0)", lambda f: f.pick(count=2.0), "count"),
]


@pytest.mark.parametrize(("label", "call", "param"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_a_bad_argument_is_an_invalid_value_naming_it_and_nothing_is_sent(label, call, param, sim):
    server = sim.add()
    fleet = Fleet()
    fleet.add(server.url, id="one")
    before = fleet.registry().instances
    with pytest.raises(InvalidValue) as refused:
        call(fleet)
    assert isinstance(refused.value, UsageError) and refused.value.exit_code == 2
    assert refused.value.params[0] == param and refused.value.message.startswith(param + " ")
    assert server.requests == [] and fleet.registry().instances == before
    assert fleet.store.read()["health"] == {}  # no probe result (a "timed out after nan s") was cached


@pytest.mark.parametrize("routing", [{"strategy": "nope"}, {"key": " "}])
def test_generate_refuses_a_routing_argument_at_the_call_as_it_says(routing, sim):
    """`generate` checks its arguments before the first fragment is asked for: a bad strategy or
    key was refused only by the first `next()`, from the thread that streams."""
    fleet = Fleet()
    fleet.add(sim.add().url, id="one")
    with pytest.raises(UsageError):
        fleet.generate("llama3.2", "hi", **routing)


def test_the_cli_shows_the_same_rule_under_its_flag_names():
    result = run("add", "gpu2", "--api-key-env", "K", "--api-key-stdin", input="key\n")
    assert result.exit_code == 2
    assert one_error_line(result) == ("ollamactl: error: --api-key-env and --api-key-stdin conflict;"
                                      " choose one way to give the key")
    result = run("health", "--timeout", "nan")
    assert result.exit_code == 2 and "error: --timeout must be a number of seconds" in one_error_line(result)
    result = run("rm", "a b", "--all", "--yes")
    assert result.exit_code == 2 and "error: MODEL 'a b' holds spaces or control characters" in one_error_line(result)


def test_model_names_are_taken_as_people_type_them(sim):
    """`llama3.2` is `llama3.2:latest` in every Survey method, as in the CLI."""
    server = sim.add()  # holds and has loaded llama3.2:latest
    fleet = Fleet()
    fleet.add(server.url, id="one")
    survey = fleet.survey()
    for name in ("llama3.2", "llama3.2:latest", "registry.ollama.ai/library/llama3.2"):
        assert [i.id for i in survey.loaded_on(name)] == ["one"], name
        assert [i.id for i in survey.holders(name)] == ["one"], name
        assert survey.pull_targets(name, everywhere=False) == [], name
        assert [s.action for s in survey.sync_plan([name], None)] == ["ok"], name
        assert [i.id for i in survey.removal(name, fleet.instances(), force=True)[0]] == ["one"], name
    assert list(survey.kinds(["llama3.2"])) == ["llama3.2:latest"]


def test_the_package_exports_its_names_lazily_and_leaves_the_host_modules_alone():
    assert issubclass(ollamactl.InvalidValue, OllamactlError) and ollamactl.Fleet is Fleet
    for name in ollamactl.__all__:
        assert getattr(ollamactl, name) is not None
    assert {"Fleet", "Instance", "HealthResult", "Survey", "OllamactlError"} <= set(ollamactl.__all__)
    script = ("import sys\n"
              "import ollamactl\n"
              "print(sorted(m for m in ('httpx', 'asyncio', 'tomlkit', 'rich', 'typer') if m in sys.modules))\n"
              "from ollamactl import Fleet, Instance, InvalidValue\n"
              "Fleet().instances()\n"
              "print('httpx._main' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "False"]  # a None entry there would break the host's httpx CLI


@pytest.mark.parametrize("argv, words", [
    (["pick", "-s", ""], "unknown strategy ''"),
    (["run", "llama3.2", "hi", "--strategy", ""], "unknown strategy ''"),
    (["export", "-f", "nginx", "--listen", ""], "--listen must be ADDR:PORT with an IP address ('')"),
    (["sync", "--from", "", "--dry-run"], "no instance with id or name ''"),
])
def test_an_empty_value_is_refused_not_taken_for_the_default(sim, argv, words):
    """An empty value (an unset variable: `-s "$STRATEGY"`) is refused as `-t ''` already was; before,
    these four went on as if the option had not been given (the default strategy, listen address,
    every instance's models)."""
    fleet = Fleet()
    fleet.add(sim.add().url, id="one")
    result = run(*argv)
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"ollamactl: error: {words}"), result.stderr
    with pytest.raises(UsageError, match="unknown strategy ''"):
        fleet.pick(strategy="")
    with pytest.raises(UsageError, match=r"^listen must be ADDR:PORT with an IP address \(''\)"):
        fleet.export("nginx", listen="")
