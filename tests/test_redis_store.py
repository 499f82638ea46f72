"""The shared Redis store against a real redis-server: one rotation for several machines, key
prefixes, what `paths`/`health` say, and falling back to the state file when Redis goes away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from cli_helpers import ok, run
from lease_helpers import cached_fleet
from redis_fixtures import looking_in

from ollamactl.core.fleet import Fleet
from ollamactl.core.state.redis_store import RedisStore

PICKER = "from ollamactl import Fleet\nf = Fleet()\nfor _ in range(50):\n    print(f.pick()[0].id)\n"


def test_two_machines_doing_8_x_50_parallel_picks_share_one_exact_rotation(redis_store, tmp_path):
    ids = cached_fleet({}, {}, {}, {})
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    workers = []
    for number in range(8):
        env = dict(os.environ, OLLAMACTL_STATE_DIR=str(machines[number % 2]))
        workers.append(subprocess.Popen([sys.executable, "-c", PICKER], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    picks = Counter()
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0 and not err, err
        picks.update(out.split())
    assert picks == {instance_id: 100 for instance_id in ids}
    assert not any((machine / "state.json").exists() for machine in machines)  # all of it went to Redis


def test_key_prefixes_keep_two_fleets_apart_on_one_server(redis_server, tmp_path):
    stores = [RedisStore(redis_server.url + f"?prefix={name}:", Fleet(state_dir=tmp_path / name).store, print)
              for name in ("team1", "team2")]
    assert [store.advance("pool", 5) for store in stores] == [0, 0]
    assert [store.advance("pool", 1) for store in stores] == [5, 5]
    stores[0].update(lambda data: data["breaker"].update({"a": {"failures": 2, "ejections": 0, "ejected_until": 0}}))
    assert stores[0].read()["breaker"]["a"]["failures"] == 2 and stores[1].read()["breaker"] == {}


def test_the_store_comes_from_the_setting_and_paths_and_health_name_it(redis_server, isolated_env, sim_instance):
    ok("add", sim_instance.url, "--no-check")  # a probe now would fill the file store: the setting comes next
    config = isolated_env["config"]
    config.write_text(f'[settings]\nstore = "{redis_server.url}?prefix=t:"\n' + config.read_text())
    where = json.loads(ok("paths", "--json").stdout)["store"]
    assert where == f"redis {redis_server.url} (key prefix t:)"
    assert f"state store: {where}" in ok("health").stdout
    assert Fleet().store.read()["health"]  # the probe's result is in Redis ...
    assert not (isolated_env["state"] / "state.json").exists()  # ... not in the file


def test_a_connection_the_server_dropped_between_operations_is_opened_again(redis_server, tmp_path):
    warnings: list[str] = []
    store = RedisStore(redis_server.url, Fleet(state_dir=tmp_path).store, warnings.append)
    assert store.advance("pool", 1) == 0
    inside = looking_in(port=redis_server.port)
    assert inside.client_kill_filter(_type="normal", skipme=True) == 1  # as a restart or an idle timeout does
    assert store.advance("pool", 1) == 1 and not warnings  # still Redis, no fallback


def test_an_invalid_store_setting_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("OLLAMACTL_STORE", "memcached://x")
    result = run("paths")
    assert result.exit_code == 2 and "OLLAMACTL_STORE must be" in result.stderr


def test_redis_stopped_mid_run_picks_keep_answering_from_the_local_state_with_one_warning(redis_store, sim):
    servers = [sim.add(), sim.add()]
    warnings: list[str] = []
    current = Fleet(warn=warnings.append)
    ids = [current.add(server.url).id for server in servers]
    current.check()
    before = [current.pick()[0].id for _ in range(4)]
    assert before == ids * 2 and not warnings
    redis_store.stop()
    after = [current.pick()[0].id for _ in range(6)]
    assert sorted(set(after)) == sorted(ids)  # still answering, still rotating (local cursor)
    assert len(warnings) == 1 and "the Redis store is unavailable" in warnings[0]
    assert "using the local state file" in warnings[0]
    picked = subprocess.run([sys.executable, "-m", "ollamactl", "pick"], capture_output=True, text=True, timeout=60)
    assert picked.returncode == 0 and picked.stdout.strip() in {s.url for s in servers}
    assert len(picked.stderr.splitlines()) == 1 and "the Redis store is unavailable" in picked.stderr
