"""`ollamactl export`: LiteLLM YAML, nginx, HAProxy and JSON, each parsed back and checked structurally.

The configs are also checked by the engines themselves (`nginx -t`, `haproxy -c`) here, and run
against a simulated fleet in test_gateways.py (LiteLLM too, through litellm.Router).
"""

import json
import os
import re
import stat
import time
from pathlib import Path

import cli_helpers
import pytest
import yaml
from gateway_engines import HAProxy, Nginx
from hypothesis import given
from hypothesis import strategies as st

from ollamactl.core.export import build as export
from ollamactl.core.fleet import Fleet
from ollamactl.core.registry.instances import Instance

SECRET = "sk-stored-5ecr3t-0a1b2c"
# LiteLLM's documented config keys (docs.litellm.ai/docs/proxy/configs, .../routing).
LITELLM_TOP = {"model_list", "router_settings", "litellm_settings", "general_settings", "environment_variables"}
LITELLM_PARAMS = {"model", "api_base", "api_key", "weight", "rpm", "tpm", "timeout", "stream_timeout"}
LITELLM_STRATEGIES = {"simple-shuffle", "least-busy", "usage-based-routing", "usage-based-routing-v2",
                      "latency-based-routing", "cost-based-routing"}


def run(*args):
    return cli_helpers.run("export", *args)


def ok(*args):
    return cli_helpers.ok("export", *args)


def entry(url, models, healthy=True, age=0.0, error=None):
    return {"url": url, "healthy": healthy, "error": error, "latency_ms": 5.0 if healthy else None,
            "version": "0.12.6" if healthy else None,
            "models": [{"name": m, "digest": "d" * 64, "size": 123} for m in models],
            "loaded": ["llama3.2:latest"] if healthy else None, "checked_at": time.time() - age}


def cache(entries):
    def change(data):
        data["health"].update(entries)

    Fleet().store.update(change)


@pytest.fixture
def fleet():
    """gpu1 (env key, weight 2), gpu2 (stored key), emb (embedding only), off (disabled), nocache (never checked)."""
    Fleet().add("gpu1", weight=2, api_key_env="GPU1_KEY")
    Fleet().add("gpu2", api_key=SECRET)
    Fleet().add("emb1", type="embedding")
    Fleet().add("off1", enabled=False)
    Fleet().add("nocache1")
    cache({
        "gpu1-11434": entry("http://gpu1:11434", ["llama3.2:latest", "nomic-embed-text:latest", "qwen2.5:7b"]),
        "gpu2-11434": entry("http://gpu2:11434", ["llama3.2:latest"]),
        "emb1-11434": entry("http://emb1:11434", ["nomic-embed-text:latest", "mxbai-embed-large:latest"]),
        "off1-11434": entry("http://off1:11434", ["llama3.2:latest"]),
    })


# ---------------------------------------------------------------------------------------------
# LiteLLM


def deployments(config):
    return {(d["model_name"], d["litellm_params"]["api_base"]): d for d in config["model_list"]}


def test_litellm_config_has_one_entry_per_instance_and_model(fleet):
    result = ok("--format", "litellm")
    config = yaml.safe_load(result.stdout)
    assert set(config) <= LITELLM_TOP
    found = deployments(config)
    assert set(found) == {
        ("llama3.2:latest", "http://gpu1:11434"), ("llama3.2:latest", "http://gpu2:11434"),
        ("nomic-embed-text:latest", "http://gpu1:11434"), ("nomic-embed-text:latest", "http://emb1:11434"),
        ("mxbai-embed-large:latest", "http://emb1:11434"), ("qwen2.5:7b", "http://gpu1:11434"),
    }
    for deployment in config["model_list"]:
        assert set(deployment["litellm_params"]) <= LITELLM_PARAMS
        assert deployment["model_info"]["mode"] in ("chat", "embedding")
    llama = found[("llama3.2:latest", "http://gpu1:11434")]["litellm_params"]
    assert llama == {"model": "ollama_chat/llama3.2:latest", "api_base": "http://gpu1:11434",
                     "api_key": "os.environ/GPU1_KEY", "weight": 2}
    # chat instances/models use ollama_chat/, embedding ones ollama/ (by type, else by name on `both`)
    assert found[("nomic-embed-text:latest", "http://emb1:11434")]["litellm_params"]["model"] == \
        "ollama/nomic-embed-text:latest"
    assert found[("nomic-embed-text:latest", "http://gpu1:11434")]["litellm_params"]["model"] == \
        "ollama/nomic-embed-text:latest"
    assert config["router_settings"]["routing_strategy"] == "simple-shuffle"
    assert config["router_settings"]["model_group_alias"]["llama3.2"] == "llama3.2:latest"
    assert "http://off1:11434" not in result.stdout  # disabled


def test_litellm_config_starts_safely_and_rests_failed_deployments(fleet):
    result = ok("--format", "litellm")
    config = yaml.safe_load(result.stdout)
    assert config["general_settings"] == {"master_key": "os.environ/LITELLM_MASTER_KEY"}
    assert config["litellm_settings"] == {"drop_params": True}  # the openai SDK's encoding_format is not refused
    settings = config["router_settings"]
    assert (settings["num_retries"], settings["allowed_fails"], settings["cooldown_time"]) == (9, 0, 30)
    assert result.stdout.splitlines()[2] == \
        "# Use: LITELLM_MASTER_KEY=sk-... litellm --config PATH --host 127.0.0.1 --port 11434"
    # gpu1 has a key and serves nomic-embed-text: LiteLLM 1.108 would send that key on chat calls only
    assert "gpu1-11434: LiteLLM before 1.109 sends no API key on Ollama embedding calls" in result.stderr


def test_litellm_never_writes_a_stored_key_and_says_which_variable_to_export(fleet):
    result = ok("--format", "litellm")
    assert SECRET not in result.stdout and SECRET not in result.stderr
    config = yaml.safe_load(result.stdout)
    gpu2 = deployments(config)[("llama3.2:latest", "http://gpu2:11434")]["litellm_params"]
    assert gpu2["api_key"] == "os.environ/OLLAMA_KEY_GPU2_11434"
    assert "export that variable" in result.stderr and "OLLAMA_KEY_GPU2_11434" in result.stderr


def test_litellm_warns_about_instances_without_health_cache(fleet):
    result = ok("--format", "litellm")
    line = next(line for line in result.stderr.splitlines() if "nocache1-11434" in line)
    assert line.startswith("ollamactl: warning: ") and "ollamactl refresh" in line
    assert "http://nocache1:11434" not in result.stdout


def test_litellm_filters_by_model_and_type(fleet):
    config = yaml.safe_load(ok("--format", "litellm", "--model", "llama3.2").stdout)
    assert {d["model_name"] for d in config["model_list"]} == {"llama3.2:latest"}
    config = yaml.safe_load(ok("--format", "litellm", "--type", "embedding").stdout)
    assert {d["litellm_params"]["model"] for d in config["model_list"]} == \
        {"ollama/nomic-embed-text:latest", "ollama/mxbai-embed-large:latest"}


def test_litellm_with_nothing_to_export_exits_3(fleet):
    result = run("--format", "litellm", "--model", "no-such-model")
    assert result.exit_code == 3 and result.stdout == ""
    assert "ollamactl refresh" in result.stderr


@pytest.mark.parametrize(("ours", "theirs"), [
    ("round-robin", "simple-shuffle"), ("weighted", "simple-shuffle"), ("random", "simple-shuffle"),
    ("least-latency", "simple-shuffle"), ("warm", "simple-shuffle"), ("least-busy", "least-busy"),
])
def test_litellm_strategy_mapping(ours, theirs):
    instance = Instance(id="a", name="a", url="http://a:11434")
    health = {"a": entry("http://a:11434", ["llama3.2:latest"])}
    out = export.export("litellm", [instance], health, export.Options(strategy=ours))
    assert yaml.safe_load(out.text)["router_settings"]["routing_strategy"] == theirs
    assert theirs in LITELLM_STRATEGIES


def test_litellm_strategy_comes_from_the_registry_settings(fleet, isolated_env):
    with isolated_env["config"].open("a") as handle:
        handle.write('\n[settings]\nstrategy = "least-latency"\n')
    result = ok("--format", "litellm")
    config = yaml.safe_load(result.stdout)
    assert config["router_settings"]["routing_strategy"] == "simple-shuffle"
    assert "latency-based-routing sends nearly every call to a server that fails fast" in result.stderr


AWKWARD = ['he said "hi"', "back\\slash", "colon: space", "# not a comment", "- dash", "yes", "null", "~", "1e3",
           "tab\there", "new\nline", "ünïcödé 模型", "\u2028sep", "@at", "`tick`", "'single'", "{flow}", "[list]",
           "", " lead", "trail ", "%percent", "*star", "&amp", "!bang", "\x00nul\x7f"]


@pytest.mark.parametrize("text", AWKWARD)
def test_yaml_strings_round_trip(text):
    assert yaml.safe_load(f"key: {export.yaml_str(text)}") == {"key": text}


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_yaml_strings_round_trip_for_any_text(text):
    assert yaml.safe_load(f"key: {export.yaml_str(text)}\nnext: 1") == {"key": text, "next": 1}


def test_litellm_model_names_with_awkward_characters_round_trip():
    instance = Instance(id="a", name="a", url="http://a:11434")
    names = ['team/model:"v1"', "x:#1", "yes:latest"]
    out = export.export("litellm", [instance], {"a": entry("http://a:11434", names)}, export.Options())
    config = yaml.safe_load(out.text)
    assert sorted(d["model_name"] for d in config["model_list"]) == sorted(names)


# ---------------------------------------------------------------------------------------------
# nginx


def blocks(text):
    """{block header: [directive lines]} for a brace-structured config; asserts braces balance."""
    depth, stack, found = 0, [], {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            depth += 1
            stack.append(line[:-1].strip())
            found.setdefault(" > ".join(stack), [])
        elif line == "}":
            depth -= 1
            assert depth >= 0, "unbalanced }"
            stack.pop()
        elif line.endswith("}"):  # a one-line block: map $host $var { default "..."; }
            header, _, body = line[:-1].partition("{")
            found.setdefault(" > ".join([*stack, header.strip()]), []).append(body.strip().rstrip(";"))
        else:
            assert line.endswith(";"), f"directive without ';': {raw!r}"
            found.setdefault(" > ".join(stack), []).append(line[:-1])
    assert depth == 0, "unbalanced {"
    return found


def servers_of(directives):
    return [line.split()[1] for line in directives if line.startswith("server ")]


def test_nginx_routes_embeddings_to_their_own_pool_and_streams(fleet):
    result = ok("--format", "nginx")
    found = blocks(result.stdout)
    # gpu1 and gpu2 have keys and no --secrets-file: left out; nocache1 (type both) is in both pools
    assert servers_of(found["upstream ollama_chat"]) == ["nocache1:11434"]
    assert servers_of(found["upstream ollama_embedding"]) == ["emb1:11434", "nocache1:11434"]
    assert "zone ollama_chat 64k" in found["upstream ollama_chat"]
    routes = found["map $uri $ollama_path_pool_11434"]
    assert "default ollama_chat" in routes
    assert {"/api/embed ollama_embedding", "/api/embeddings ollama_embedding", "/v1/embeddings ollama_embedding"} \
        <= set(routes)
    directives = found["server > location /"]  # every path, / included (Ollama's clients send HEAD /)
    assert "proxy_pass http://$ollama_pool_11434" in directives
    assert "proxy_buffering off" in directives and "proxy_http_version 1.1" in directives
    assert "proxy_set_header Host localhost" in directives
    assert 'proxy_set_header Authorization ""' in directives  # clients' own keys stop at the gateway
    assert "proxy_next_upstream error timeout http_404 http_500 http_502 http_503 http_504 non_idempotent" \
        in directives
    # nomic-embed-text is known to be on emb1 only (nocache1 was never checked): its pool is emb1 alone,
    # chosen by the body's model, which the mirror has nginx read before proxy_pass picks the pool
    assert servers_of(found["upstream ollama_embedding_m1_nomic_embed_text_latest"]) == ["emb1:11434"]
    assert {'"ollama_embedding nomic-embed-text" ollama_embedding_m1_nomic_embed_text_latest',
            "default $ollama_path_pool_11434"} \
        <= set(found['map "$ollama_path_pool_11434 $ollama_model_11434" $ollama_pool_11434'])
    assert directives[0] == "mirror /_ollamactl_read_body"
    assert found["server > location = /_ollamactl_read_body"] == ["internal; return 204"]
    # every server of the largest pool (2 embedding servers), on bodies nginx kept to send again
    assert {"proxy_next_upstream_tries 2", "proxy_next_upstream_timeout 15m", "proxy_request_buffering on"} \
        <= set(directives)
    timeout = next(d for d in directives if d.startswith("proxy_read_timeout "))
    assert int(timeout.split()[1].rstrip("s")) >= 300
    assert "listen 127.0.0.1:11434" in found["server"]
    assert SECRET not in result.stdout
    assert "gpu1-11434 is left out: nginx cannot read the environment" in result.stderr
    assert "gpu2-11434 is left out" in result.stderr and "--secrets-file PATH" in result.stderr
    assert "nocache1-11434: never checked; in the nginx pool anyway: open-source nginx does not check health" \
        in result.stderr


@pytest.fixture
def short_dir():
    """A directory with a short path: the key hops' unix sockets go beside the secrets file, and a
    socket path holds 107 bytes (pytest's own tmp_path under xdist comes close)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="oxk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_nginx_keys_go_only_to_the_secrets_file_and_each_keyed_instance_gets_its_own(fleet, short_dir, monkeypatch):
    monkeypatch.setenv("GPU1_KEY", "sk-env-gpu1")
    secrets = short_dir / "keys" / "ollama-keys.conf"
    secrets.parent.mkdir()
    result = ok("--format", "nginx", "--secrets-file", str(secrets))
    assert SECRET not in result.stdout + result.stderr and "sk-env-gpu1" not in result.stdout + result.stderr
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    keys = blocks(secrets.read_text())
    assert keys["map $host $ollama_key_gpu1_11434"] == ['default "Bearer sk-env-gpu1"']
    assert keys["map $host $ollama_key_gpu2_11434"] == [f'default "Bearer {SECRET}"']
    found = blocks(result.stdout)
    assert f"include {secrets}" in found[""]
    hop = f"unix:{secrets.parent}/ollamactl-11434-gpu1_11434.sock"
    assert hop in servers_of(found["upstream ollama_chat"])
    assert "server gpu1:11434" in found["upstream ollama_key_gpu1_11434"]
    text = result.stdout  # the hops are `server` blocks too, which blocks() merges: count in the text
    assert text.count(f"listen {hop};") == 1
    assert text.count("proxy_set_header Authorization $ollama_key_gpu1_11434;") == 1
    assert text.count("proxy_set_header Authorization $ollama_key_gpu2_11434;") == 1


def test_nginx_leaves_out_a_keyed_instance_whose_key_it_cannot_have(fleet, tmp_path, monkeypatch):
    monkeypatch.delenv("GPU1_KEY", raising=False)
    result = ok("--format", "nginx", "--secrets-file", str(tmp_path / "keys.conf"))
    assert "gpu1-11434 is left out: its key variable $GPU1_KEY is not set here" in result.stderr
    monkeypatch.setenv("GPU1_KEY", "sk-$host")
    result = ok("--format", "nginx", "--secrets-file", str(tmp_path / "keys.conf"))
    assert "gpu1-11434 is left out: its API key has characters nginx cannot take" in result.stderr
    assert "sk-$host" not in result.stderr + (tmp_path / "keys.conf").read_text()


def test_nginx_marks_disabled_instances_down_with_all(fleet):
    found = blocks(ok("--format", "nginx", "--all").stdout)
    assert "server off1:11434 weight=1 max_fails=3 fail_timeout=2s down" in found["upstream ollama_chat"]


def test_unhealthy_instances_are_in_marked_and_warned_about(fleet):
    cache({"emb1-11434": entry("http://emb1:11434", [], healthy=False, error="connection refused")})
    nginx = ok("--format", "nginx")
    line = next(line for line in nginx.stdout.splitlines() if "server emb1:11434" in line)
    assert "unhealthy at its last check (connection refused)" in line
    assert "emb1-11434: unhealthy at its last check (connection refused); in the nginx pool anyway" in nginx.stderr
    haproxy = ok("--format", "haproxy")
    line = next(line for line in haproxy.stdout.splitlines() if " emb1:11434 " in line)
    assert line.split("#")[1].strip() == "unhealthy at its last check (connection refused)"
    assert "HAProxy checks it itself" in haproxy.stderr
    litellm = ok("--format", "litellm")  # LiteLLM needs a model list, so it cannot take it
    assert "http://emb1:11434" not in litellm.stdout and "emb1-11434: was unhealthy" in litellm.stderr


def test_nginx_leaves_out_https_and_path_prefixes_with_a_warning():
    Fleet().add("http://plain:11434")
    Fleet().add("https://secure.example.com", id="secure")
    Fleet().add("http://proxy.example.com:8080/ollama", id="prefixed")
    result = ok("--format", "nginx")
    found = blocks(result.stdout)
    assert servers_of(found["upstream ollama"]) == ["plain:11434"]  # one pool: nothing is embedding-only
    assert "proxy_pass http://ollama" in found["server > location /"]
    assert re.search(r"warning: secure .*left out.*https", result.stderr)
    assert re.search(r"warning: prefixed .*left out.*path prefix /ollama", result.stderr)


def test_nginx_model_filter_names_the_pool_and_skips_unknown_instances(fleet, tmp_path, monkeypatch):
    monkeypatch.setenv("GPU1_KEY", "sk-env-gpu1")
    result = ok("--format", "nginx", "--model", "llama3.2", "--type", "chat", "--secrets-file",
                str(tmp_path / "k.conf"))
    found = blocks(result.stdout)
    pool = "upstream ollama_chat_llama3_2_latest"
    assert [s.rsplit("-", 1)[-1] for s in servers_of(found[pool])] == ["gpu1_11434.sock", "gpu2_11434.sock"]
    assert "proxy_pass http://ollama_chat_llama3_2_latest" in found["server > location /"]
    assert "nocache1-11434: no health check on record" in result.stderr


def test_nginx_accepts_the_config(fleet, tmp_path, monkeypatch):
    monkeypatch.setenv("GPU1_KEY", "sk-env-gpu1")
    conf = tmp_path / "ollama.conf"
    ok("--format", "nginx", "--all", "-o", str(conf), "--secrets-file", str(tmp_path / "keys.conf"))
    # nginx -t resolves upstream host names: use addresses for this one
    text = conf.read_text()
    for n, host in enumerate(("gpu1", "gpu2", "emb1", "off1", "nocache1"), start=1):
        text = text.replace(f"{host}:11434", f"127.0.0.{n}:11434")
    conf.write_text(text)
    Nginx(tmp_path / "nginx").check(conf)


# ---------------------------------------------------------------------------------------------
# HAProxy


def sections(text):
    """{"backend ollama": [lines]}: HAProxy sections start at column 0, their lines are indented."""
    found, current = {}, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = line.strip()
            assert current not in found, f"duplicate section {current}"
            found[current] = []
        else:
            assert current is not None, f"directive outside a section: {raw!r}"
            found[current].append(line.strip())
    return found


def test_haproxy_routes_by_path_retries_and_logs(fleet):
    result = ok("--format", "haproxy", "--all")
    found = sections(result.stdout)
    frontend = found["frontend ollama"]
    assert "bind 127.0.0.1:11434" in frontend
    assert {"log global", "option httplog", "option forwardfor", "option http-no-delay"} <= set(frontend)
    assert "http-request del-header Authorization" in frontend  # clients' own keys stop here
    assert "acl embedding_path path /api/embed /api/embeddings /v1/embeddings" in frontend
    # models some servers lack go to those that hold them (the disabled off1 and never-checked nocache1 do not)
    assert "http-request set-var(txn.model) req.body,json_query('$.model')" in frontend
    routed = {line.split()[1]: line for line in frontend if line.startswith("use_backend ")}
    acls = {line.split()[1]: line.split()[5:] for line in frontend if line.startswith("acl model_")}
    qwen = routed["ollama_chat_m3_qwen2_5_7b"].split()[-1]
    assert acls[qwen] == ["qwen2.5:7b"] and "!embedding_path" in routed["ollama_chat_m3_qwen2_5_7b"]
    assert [line for line in found["backend ollama_chat_m3_qwen2_5_7b"] if line.startswith("server ")] == \
        [line for line in found["backend ollama_chat"] if line.startswith("server gpu1-11434 ")]
    assert "use_backend ollama_embedding if embedding_path" in frontend
    assert frontend[-1] == "default_backend ollama_chat"
    backend = found["backend ollama_chat"]
    assert "mode http" in backend and "balance roundrobin" in backend
    assert "option httpchk GET /api/version" in backend
    assert "http-request set-header Host localhost" in backend
    # each retry on another server, as many as the other servers of the pool, on bodies kept to send again
    assert {"option redispatch 1", "retries 3", "option http-buffer-request",
            "retry-on conn-failure empty-response response-timeout 404 500 502 503 504"} <= set(backend)
    assert "option http-buffer-request" in frontend
    servers = {line.split()[1]: line.split()[2:] for line in backend if line.startswith("server ")}
    assert list(servers) == ["gpu1-11434", "gpu2-11434", "off1-11434", "nocache1-11434"]
    for words in servers.values():
        assert words[1:8] == ["check", "inter", "2s", "rise", "2", "fall", "3"] and words[8] == "weight"
    assert servers["gpu1-11434"] == ["abns@ollamactl-11434-ollama_key_gpu1_11434", "check", "inter", "2s", "rise",
                                     "2", "fall", "3", "weight", "2"]
    assert servers["off1-11434"][-1] == "disabled"
    embedding = {line.split()[1] for line in found["backend ollama_embedding"] if line.startswith("server ")}
    assert embedding == {"gpu1-11434", "gpu2-11434", "emb1-11434", "off1-11434", "nocache1-11434"}  # type both
    assert SECRET not in result.stdout + result.stderr


def test_haproxy_gives_each_key_to_its_own_instance_and_its_checks_from_the_environment(fleet):
    result = ok("--format", "haproxy")
    found = sections(result.stdout)
    hop = found["listen ollama_key_gpu1_11434"]
    assert "bind abns@ollamactl-11434-ollama_key_gpu1_11434" in hop
    assert 'http-request set-header Authorization "Bearer ${GPU1_KEY}"' in hop
    assert 'http-check send meth GET uri /api/version hdr Host localhost hdr Authorization "Bearer ${GPU1_KEY}"' \
        in hop
    assert hop[-1] == "server gpu1-11434 gpu1:11434 check inter 2s rise 2 fall 3"
    stored = found["listen ollama_key_gpu2_11434"]
    assert 'http-request set-header Authorization "Bearer ${OLLAMA_KEY_GPU2_11434}"' in stored
    assert "GPU1_KEY, OLLAMA_KEY_GPU2_11434 from its environment" in result.stdout
    assert "reads it from $OLLAMA_KEY_GPU2_11434, so export that variable where HAProxy runs" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    for name, lines in found.items():  # no other section ever sets a key
        if name not in ("listen ollama_key_gpu1_11434", "listen ollama_key_gpu2_11434"):
            assert not any("Authorization" in line and "del-header" not in line for line in lines), name


def test_haproxy_balance_follows_the_strategy():
    instance = Instance(id="a", name="a", url="http://a:11434")
    for ours, theirs in (("round-robin", "roundrobin"), ("random", "random"), ("least-latency", "leastconn")):
        text = export.export("haproxy", [instance], {}, export.Options(strategy=ours)).text
        assert f"balance {theirs}" in sections(text)["backend ollama"]


def test_haproxy_accepts_the_config(fleet, tmp_path):
    config = tmp_path / "ollama.cfg"
    ok("--format", "haproxy", "--all", "-o", str(config))
    text = config.read_text()
    for n, host in enumerate(("gpu1", "gpu2", "emb1", "off1", "nocache1"), start=1):
        text = text.replace(f"{host}:11434", f"127.0.0.{n}:11434")
    config.write_text(text)
    HAProxy(tmp_path / "haproxy", env={"GPU1_KEY": "k1", "OLLAMA_KEY_GPU2_11434": "k2"}).check(config)


# ---------------------------------------------------------------------------------------------
# Listening address and files


def test_the_gateway_listens_on_loopback_unless_asked_and_warns_when_asked(fleet):
    for fmt in ("nginx", "haproxy"):
        assert "127.0.0.1:11434" in ok("--format", fmt).stdout
    result = ok("--format", "haproxy", "--listen", "0.0.0.0:8080")
    assert "bind 0.0.0.0:8080" in sections(result.stdout)["frontend ollama"]
    assert "reachable from other hosts, and has no access control" in result.stderr
    assert "listen [::1]:8080" in blocks(ok("--format", "nginx", "--listen", "[::1]:8080").stdout)["server"]
    assert "--port 4000" in ok("--format", "litellm", "--listen", "127.0.0.1:4000").stdout.splitlines()[2]


@pytest.mark.parametrize(("args", "words"), [
    (["--format", "nginx", "--listen", "gpu1:80"], "--listen must be ADDR:PORT with an IP address ('gpu1:80')"),
    (["--format", "nginx", "--listen", "127.0.0.1:0"], "--listen must be ADDR:PORT"),
    (["--format", "haproxy", "--listen", "::1:80"], "--listen must be ADDR:PORT"),
    (["--format", "json", "--listen", "127.0.0.1:80"], "--listen applies to the gateway formats"),
    (["--format", "haproxy", "--secrets-file", "k.conf"], "--secrets-file is for --format nginx, not haproxy"),
    (["--format", "nginx", "-o", "same.conf", "--secrets-file", "same.conf"], "are the same file"),
    (["--format", "nginx", "-o", "no/such/dir/ollama.conf"], "--output: no such directory"),
    (["--format", "nginx", "--secrets-file", "my keys.conf"], "--secrets-file cannot go into an nginx directive"),
])
def test_bad_files_and_addresses_exit_2_and_write_nothing(fleet, tmp_path, monkeypatch, args, words):
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == "", result.stderr
    assert words in cli_helpers.one_error_line(result)
    assert list((tmp_path / "out").iterdir()) == []


def test_output_replaces_the_previous_export_atomically(fleet, tmp_path):
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "ollama.cfg"
    path.write_text("frontend stale\n")
    os.chmod(path, 0o600)
    first = ok("--format", "haproxy", "-o", str(path))
    assert first.stdout == "" and stat.S_IMODE(path.stat().st_mode) == 0o644
    text = path.read_text()
    assert "frontend stale" not in text and f"-f {path}" in text.splitlines()[1]
    ok("--format", "haproxy", "-o", str(path))
    assert path.read_text() == text  # re-running is idempotent
    assert sorted(p.name for p in path.parent.iterdir()) == ["ollama.cfg"]


# ---------------------------------------------------------------------------------------------
# JSON and errors


def test_json_is_the_registry_plus_health_without_keys(fleet):
    result = ok("--format", "json")
    data = json.loads(result.stdout)
    assert data["schema"] == 1 and data["strategy"] == "round-robin"
    rows = {row["id"]: row for row in data["instances"]}
    assert list(rows) == ["gpu1-11434", "gpu2-11434", "emb1-11434", "off1-11434", "nocache1-11434"]
    assert set(rows["gpu1-11434"]) == {"id", "name", "url", "type", "enabled", "weight", "priority", "max_inflight",
                                       "auth", "created_at", "health"}
    assert rows["gpu1-11434"]["auth"] == "env:GPU1_KEY" and rows["gpu2-11434"]["auth"] == "stored"
    assert rows["off1-11434"]["enabled"] is False
    assert rows["nocache1-11434"]["health"] is None
    health = rows["gpu1-11434"]["health"]
    assert set(health) == {"healthy", "error", "latency_ms", "version", "models", "loaded", "checked_at"}
    assert health["models"][0] == {"name": "llama3.2:latest", "digest": "d" * 64, "size": 123}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", health["checked_at"])
    assert SECRET not in result.stdout and "api_key" not in result.stdout


def test_json_filters(fleet):
    data = json.loads(ok("--format", "json", "--type", "chat").stdout)
    assert [row["id"] for row in data["instances"]] == ["gpu1-11434", "gpu2-11434", "off1-11434", "nocache1-11434"]
    data = json.loads(ok("--format", "json", "--model", "mxbai-embed-large").stdout)
    assert [row["id"] for row in data["instances"]] == ["emb1-11434"]


def test_a_stale_cache_is_used_with_a_warning():
    Fleet().add("gpu1")
    cache({"gpu1-11434": entry("http://gpu1:11434", ["llama3.2:latest"], age=7200)})
    result = ok("--format", "litellm")
    assert yaml.safe_load(result.stdout)["model_list"][0]["model_name"] == "llama3.2:latest"
    assert "2 h old" in result.stderr


def test_a_cache_entry_for_an_old_url_is_ignored():
    Fleet().add("gpu1")
    cache({"gpu1-11434": entry("http://elsewhere:11434", ["llama3.2:latest"])})
    result = run("--format", "litellm")
    assert result.exit_code == 3 and "gpu1-11434: no health check on record" in result.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["--format", "yaml"], "unknown format 'yaml'; choose one of: litellm, nginx, haproxy, json"),
    (["--format", "nginx", "--type", "vision"], "unknown type 'vision'"),
])
def test_bad_input_exits_2(args, words):
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == "" and words in result.stderr


def test_an_empty_registry_exits_3_except_for_json():
    result = run("--format", "nginx")
    assert result.exit_code == 3 and "no instances registered" in result.stderr
    assert json.loads(ok("--format", "json").stdout) == {"schema": 1, "strategy": "round-robin", "instances": []}


def test_a_malformed_cache_entry_is_tolerated():
    Fleet().add("gpu1")
    Fleet().add("gpu2")
    cache({"gpu1-11434": {**entry("http://gpu1:11434", []), "models": "garbage"},
           "gpu2-11434": entry("http://gpu2:11434", ["llama3.2:latest"])})
    result = ok("--format", "litellm")
    assert [d["litellm_params"]["api_base"] for d in yaml.safe_load(result.stdout)["model_list"]] == \
        ["http://gpu2:11434"]
    assert "gpu1-11434: listed no models" in result.stderr
    assert json.loads(ok("--format", "json").stdout)["instances"][0]["health"]["models"] == []
