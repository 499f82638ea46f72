"""Numbers validated once, in one place (issue 11, point 5): flags and settings are finite and in
range, or refused with the offending value, before anything is sent or written."""

from __future__ import annotations

import pytest
from cli_helpers import one_error_line, run

from ollamactl.core import settings
from ollamactl.core.fleet import Fleet

FLAGS = [
    (["run", "llama3.2", "hi", "--connect-timeout=nan"], "--connect-timeout", "nan"),  # before: a traceback
    (["run", "llama3.2", "hi", "--connect-timeout=inf"], "--connect-timeout", "inf"),  # before: OverflowError
    (["run", "llama3.2", "hi", "--first-byte-timeout=nan"], "--first-byte-timeout", "nan"),  # before: never fired
    (["run", "llama3.2", "hi", "--first-byte-timeout", "0"], "--first-byte-timeout", "0.0"),
    (["run", "llama3.2", "hi", "--tries", "0"], "--tries", "0"),
    (["health", "--watch", "--interval=inf"], "--interval", "inf"),  # before: OverflowError
    (["health", "--watch", "--interval", "1e-300"], "--interval", "1e-300"),  # before: 22 probes a second
    (["health", "--watch", "--interval", "0.49"], "--interval", "0.49"),
    (["health", "--timeout=nan"], "--timeout", "nan"),
    (["health", "--timeout", "1e9"], "--timeout", "1000000000.0"),
    (["embed", "nomic-embed-text", "x", "--per-instance", "10000000"], "--per-instance", "10000000"),  # was 3.1 GB
    (["embed", "nomic-embed-text", "x", "--batch-size", "0"], "--batch-size", "0"),
    (["embed", "nomic-embed-text", "x", "--first-byte-timeout", "-1"], "--first-byte-timeout", "-1.0"),
    (["pick", "-n", "1000000000"], "--count", "1000000000"),  # before: MemoryError after 3.8 GB
    (["add", "127.0.0.1:5", "--weight", "99999999999999999999"], "weight", "99999999999999999999"),
    (["pull", "llama3.2", "--concurrency", "0"], "--concurrency", "0"),
    (["sync", "--concurrency", "1000000"], "--concurrency", "1000000"),
    (["simulate", "--instances", "10000000"], "--instances", "10000000"),
    (["simulate", "--pull-speed", "inf"], "--pull-speed", "inf"),
]


@pytest.mark.parametrize("args, flag, value", FLAGS, ids=[" ".join(f[0]) for f in FLAGS])
def test_a_bad_number_flag_exits_2_naming_it_and_sends_nothing(sim, isolated_env, args, flag, value):
    instance = sim.add()
    Fleet().add(instance.url, id="one")
    before = isolated_env["config"].read_bytes()
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == ""
    line = one_error_line(result)
    assert flag in line and f"got {value}" in line
    assert instance.requests == [] and isolated_env["config"].read_bytes() == before


@pytest.mark.parametrize("setting, value", [("connect_timeout", "inf"), ("timeout", "inf"), ("timeout", "nan"),
                                            ("first_byte_timeout", "0"), ("health_ttl", "-inf"),
                                            ("concurrency", "1e9")])
def test_a_bad_number_setting_is_refused_naming_it(isolated_env, setting, value):
    config = isolated_env["config"]
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"version = 1\n\n[settings]\n{setting} = {value}\n")
    for args in (["run", "llama3.2", "hi"], ["health"], ["pick"]):
        result = run(*args)
        assert result.exit_code == 1  # an unusable registry, as for every other invalid setting
        line = one_error_line(result)
        assert f"settings.{setting}" in line and "got" in line


def test_every_number_has_one_rule():
    assert settings.number_problem("timeout", 5.0) is None and settings.number_problem("timeout", 86400) is None
    assert "got 86401" in settings.number_problem("timeout", 86401)
    assert settings.number_problem("concurrency", 2.0) is None  # a whole float is a whole number
    assert "got 2.5" in settings.number_problem("concurrency", 2.5)
    assert "got True" in settings.number_problem("weight", True)
    assert set(settings.DEFAULTS) - {"strategy", "store"} <= set(settings.NUMBERS)  # the two words
