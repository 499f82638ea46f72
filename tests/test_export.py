"""`ollamactl export`: LiteLLM YAML, nginx, HAProxy and JSON, each parsed back and checked structurally.

LiteLLM itself is not a dependency: its config is checked against the keys LiteLLM documents
(and which its Router and proxy loader were seen to accept, see the module constants below).
"""

import json
import re
import shutil
import subprocess
import time

import cli_helpers
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ollamactl.core import export
from ollamactl.core.fleet import Fleet
from ollamactl.core.registry import Instance

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
    ("least-latency", "latency-based-routing"), ("warm", "latency-based-routing"),
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
    config = yaml.safe_load(ok("--format", "litellm").stdout)
    assert config["router_settings"]["routing_strategy"] == "latency-based-routing"


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
        else:
            assert line.endswith(";"), f"directive without ';': {raw!r}"
            found[" > ".join(stack)].append(line[:-1])
    assert depth == 0, "unbalanced {"
    return found


def test_nginx_upstream_and_streaming_server(fleet):
    result = ok("--format", "nginx")
    found = blocks(result.stdout)
    servers = [line for line in found["upstream ollama"] if line.startswith("server ")]
    assert servers == [
        "server gpu1:11434 weight=2 max_fails=3 fail_timeout=30s",
        "server gpu2:11434 weight=1 max_fails=3 fail_timeout=30s",
        "server emb1:11434 weight=1 max_fails=3 fail_timeout=30s",
        "server nocache1:11434 weight=1 max_fails=3 fail_timeout=30s",
    ]
    for location in ("location /api/", "location /v1/"):
        directives = found[f"server > {location}"]
        assert "proxy_pass http://ollama" in directives
        assert "proxy_buffering off" in directives
        assert "proxy_http_version 1.1" in directives
        assert "proxy_set_header Host localhost" in directives
        timeout = next(d for d in directives if d.startswith("proxy_read_timeout "))
        assert int(timeout.split()[1].rstrip("s")) >= 300
    assert any(d.startswith("listen ") for d in found["server"])
    assert SECRET not in result.stdout
    assert "gpu1-11434, gpu2-11434 use an API key" in result.stderr
    assert "mixes instance types" in result.stderr  # emb1 is embedding-only


def test_nginx_marks_disabled_instances_down_with_all(fleet):
    found = blocks(ok("--format", "nginx", "--all").stdout)
    assert "server off1:11434 weight=1 max_fails=3 fail_timeout=30s down" in found["upstream ollama"]


def test_nginx_leaves_out_https_and_path_prefixes_with_a_warning():
    Fleet().add("http://plain:11434")
    Fleet().add("https://secure.example.com", id="secure")
    Fleet().add("http://proxy.example.com:8080/ollama", id="prefixed")
    result = ok("--format", "nginx")
    found = blocks(result.stdout)
    assert [line for line in found["upstream ollama"] if line.startswith("server ")] == \
        ["server plain:11434 weight=1 max_fails=3 fail_timeout=30s"]
    assert re.search(r"warning: secure .*left out.*https", result.stderr)
    assert re.search(r"warning: prefixed .*left out.*path prefix /ollama", result.stderr)


def test_nginx_model_filter_names_the_pool_and_skips_unknown_instances(fleet):
    result = ok("--format", "nginx", "--model", "llama3.2", "--type", "chat")
    found = blocks(result.stdout)
    pool = "upstream ollama_chat_llama3_2_latest"
    assert [line.split()[1] for line in found[pool] if line.startswith("server ")] == ["gpu1:11434", "gpu2:11434"]
    assert "proxy_pass http://ollama_chat_llama3_2_latest" in found["server > location /api/"]
    assert "nocache1-11434: no health check on record" in result.stderr


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_config(fleet, tmp_path):
    (tmp_path / "ollama.conf").write_text(ok("--format", "nginx", "--all").stdout)
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                    f"http {{\n access_log off;\n include {tmp_path}/ollama.conf;\n}}\n")
    # nginx -t resolves upstream host names: use addresses for this one
    text = (tmp_path / "ollama.conf").read_text()
    for n, host in enumerate(("gpu1", "gpu2", "emb1", "off1", "nocache1"), start=1):
        text = text.replace(f"{host}:11434", f"127.0.0.{n}:11434")
    (tmp_path / "ollama.conf").write_text(text)
    checked = subprocess.run(["nginx", "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


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


def test_haproxy_backend_with_http_checks(fleet):
    result = ok("--format", "haproxy", "--all")
    found = sections(result.stdout)
    assert found["frontend ollama"][-1] == "default_backend ollama"
    backend = found["backend ollama"]
    assert "mode http" in backend and "balance roundrobin" in backend
    assert "option httpchk GET /api/version" in backend
    assert "http-request set-header Host localhost" in backend
    servers = {line.split()[1]: line.split()[2:] for line in backend if line.startswith("server ")}
    assert list(servers) == ["gpu1-11434", "gpu2-11434", "emb1-11434", "off1-11434", "nocache1-11434"]
    for words in servers.values():
        assert words[1:8] == ["check", "inter", "2s", "rise", "2", "fall", "3"] and words[8] == "weight"
    assert servers["gpu1-11434"] == ["gpu1:11434", "check", "inter", "2s", "rise", "2", "fall", "3", "weight", "2"]
    assert servers["off1-11434"][-1] == "disabled"
    assert SECRET not in result.stdout


def test_haproxy_balance_follows_the_strategy():
    instance = Instance(id="a", name="a", url="http://a:11434")
    for ours, theirs in (("round-robin", "roundrobin"), ("random", "random"), ("least-latency", "leastconn")):
        text = export.export("haproxy", [instance], {}, export.Options(strategy=ours)).text
        assert f"balance {theirs}" in sections(text)["backend ollama"]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_config(fleet, tmp_path):
    config = tmp_path / "haproxy.cfg"
    text = ok("--format", "haproxy", "--all").stdout
    for n, host in enumerate(("gpu1", "gpu2", "emb1", "off1", "nocache1"), start=1):
        text = text.replace(f"{host}:11434", f"127.0.0.{n}:11434")
    config.write_text(text)
    checked = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---------------------------------------------------------------------------------------------
# JSON and errors


def test_json_is_the_registry_plus_health_without_keys(fleet):
    result = ok("--format", "json")
    data = json.loads(result.stdout)
    assert data["schema"] == 1 and data["strategy"] == "round-robin"
    rows = {row["id"]: row for row in data["instances"]}
    assert list(rows) == ["gpu1-11434", "gpu2-11434", "emb1-11434", "off1-11434", "nocache1-11434"]
    assert set(rows["gpu1-11434"]) == {"id", "name", "url", "type", "enabled", "weight", "auth", "created_at",
                                       "health"}
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
