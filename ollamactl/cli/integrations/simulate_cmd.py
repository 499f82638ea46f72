"""`ollamactl simulate`: simulated Ollama servers on loopback, for the tour, demos and trying things out."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import typer

from ollamactl import OllamactlError, UsageError, checked_number
from ollamactl.cli import output
from ollamactl.cli.context import fleet

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)


def _per_instance(specs: Sequence[str], count: int, flag: str, shape: str, example: str) -> dict[int, str]:
    """`--flag INDEX=VALUE` options as {index: value}; UsageError naming the flag otherwise."""
    values: dict[int, str] = {}
    for spec in specs:
        index_text, sep, value = spec.partition("=")
        if not sep or not index_text.strip().isdigit():
            raise UsageError(f"{flag} {spec!r} is not {shape}", f"e.g. {flag} {example} (instances count from 1)")
        index = int(index_text)
        if not 1 <= index <= count:
            raise UsageError(f"{flag} {spec!r}: index {index} is not between 1 and {count}")
        values[index] = value.strip()
    return values


def _parse_faults(specs: Sequence[str], count: int) -> dict[int, str]:
    from ollamactl.sim import FAULTS

    faults = _per_instance(specs, count, "--fault", "INDEX=MODE", "2=refuse")
    for mode in faults.values():
        if mode not in FAULTS:
            raise UsageError(f"--fault: unknown mode {mode!r}", f"choose from {', '.join(FAULTS)}")
    return faults


def _parse_models(specs: Sequence[str], count: int) -> dict[int, list[Any]]:
    """`--models 2=llama3.2,qwen3:4b@old` -> {2: [SimModel, SimModel]} (the build label picks a digest)."""
    from ollamactl.sim import upstream_model

    sets: dict[int, list[Any]] = {}
    for index, listing in _per_instance(specs, count, "--models", "INDEX=NAME,...", "2=llama3.2,qwen3:4b@old").items():
        names = [part.strip() for part in listing.split(",") if part.strip()]
        if any(not name.partition("@")[0] or any(ch.isspace() for ch in name) for name in names):
            raise UsageError(f"--models {index}={listing!r}: a model name is empty or holds a space")
        sets[index] = [upstream_model(name, build=build or None)
                       for name, _, build in (part.partition("@") for part in names)]
    return sets


def _models_of(model_sets: dict[int, list[Any]], index: int) -> dict[str, Any]:
    """SimConfig's `models` for instance `index`, when --models named them (else its defaults)."""
    return {"models": model_sets[index]} if index in model_sets else {}


def _parse_rates(specs: Sequence[str], count: int) -> dict[int, float]:
    """`--token-rate 1=200` -> {1: 200.0}: tokens per second that instance generates (and reports)."""
    rates = {}
    for index, text in _per_instance(specs, count, "--token-rate", "INDEX=TOKENS_PER_S", "1=200").items():
        try:
            rates[index] = float(text)
        except ValueError:
            rates[index] = math.nan
        if not (math.isfinite(rates[index]) and 0 < rates[index] <= 1e6):
            raise UsageError(f"--token-rate {index}={text}: not a speed", "give tokens per second above 0")
    return rates


def _complete_fault(incomplete: str) -> list[str]:
    """INDEX=MODE for every fault mode: the index typed (1 when none yet), the modes that fit."""
    from ollamactl.sim import FAULTS

    index, _, mode = incomplete.partition("=")
    if not index.isdigit():
        return [] if index else [f"1={fault}" for fault in FAULTS]
    return [f"{index}={fault}" for fault in FAULTS if fault.startswith(mode)]


def _register(urls: list[str]) -> tuple[list[str], dict[str, str]]:
    """Add sim-1..sim-N for these URLs, reusing an entry that already has the URL; returns the ids,
    and {id: url} of the entries added here (the ones to unregister on stop)."""
    current = fleet()
    ids, added = [], {}
    for number, url in enumerate(urls, start=1):
        existing = current.registered(url)  # once per URL: each add below changes the registry
        if existing is not None:
            output.message(f"{url} is already registered as {existing.id}; reusing it (it stays registered)")
            ids.append(existing.id)
            continue
        name = f"sim-{number}"
        taken = {ref for i in current.instances() for ref in (i.id, i.name)}
        instance = current.add(url, name=name if name not in taken else None)
        ids.append(instance.id)
        added[instance.id] = instance.url
    return ids, added


def _unregister(added: dict[str, str]) -> None:
    """Remove the entries this run added, if they are still there and still point at the simulator."""
    current = fleet()
    still = [i.id for i in current.instances() if added.get(i.id) == i.url]
    if still:
        current.remove(*still)
        output.message(f"unregistered {', '.join(still)} (pass --keep to keep them)")


def _stop_on_hangup_or_kill() -> None:
    """Closing the terminal (SIGHUP), `kill` and `timeout` (SIGTERM) stop the servers as Ctrl-C
    does: cleanly, unregistering what was added. Once stopping, more of them are ignored, so the
    clean-up itself is not cut short."""
    import signal

    stops = [getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name)]

    def interrupt(signum: int, frame: Any) -> None:
        for stop in stops:
            signal.signal(stop, signal.SIG_IGN)
        raise KeyboardInterrupt

    for stop in stops:
        signal.signal(stop, interrupt)


def _listen_address(text: str) -> str:
    """--host as an IP address to bind: `[::1]` or `::1`, `127.0.0.2`; refused (exit 2) otherwise."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise UsageError(f"--host {text!r} is not an IP address", "give one such as 127.0.0.2 or ::1") from None


@app.command()
def simulate(
    count: int = typer.Option(3, "--instances", "-n", metavar="N", help="How many simulated servers."),
    base_port: int = typer.Option(0, "--base-port", metavar="P",
                                  help="Listen on P, P+1, ... (0: any free ports; e.g. 11500)."),
    register: bool = typer.Option(False, "--register",
                                  help="Add them to the registry as sim-1..sim-N (removed again on stop)."),
    keep: bool = typer.Option(False, "--keep", help="With --register: leave them registered when stopping."),
    fault: list[str] | None = typer.Option(None, "--fault", metavar="INDEX=MODE", autocompletion=_complete_fault,
                                           help="Start instance INDEX (from 1) in a fault mode: refuse, hang,"
                                                " http500, busy503, garbage, midstream, truncated, drip."),
    models: list[str] | None = typer.Option(None, "--models", metavar="INDEX=NAME[@BUILD],...",
                                            help="Start instance INDEX with these models instead of the default"
                                                 " three; @BUILD gives a model another (older) digest."),
    pull_speed: float = typer.Option(400.0, "--pull-speed", metavar="MB/S",
                                     help="Download speed of a simulated /api/pull."),
    token_rate: list[str] | None = typer.Option(None, "--token-rate", metavar="INDEX=TOKENS_PER_S",
                                                help="Generate at this speed on instance INDEX, reported in"
                                                     " eval_count/eval_duration as Ollama does (default: as fast"
                                                     " as possible, reported as 100)."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDR",
                             help="Address to listen on: 127.0.0.1, or another loopback address such as"
                                  " 127.0.0.2 to simulate servers on several hosts (see `discover`)."),
) -> None:
    """Run simulated Ollama servers on loopback until Ctrl-C (for demos and trying ollamactl out).

    Any catalogue model (llama3.2, qwen3:4b, gemma3:4b, nomic-embed-text, ...) or any model one of
    them holds can be pulled; other names fail as Ollama's registry does.

    Each server's fault can be changed while it runs: POST {"fault": "busy503"} to URL/_sim/config
    ({"fault": null} clears it). "refuse" closes the port; bring it back through another instance
    with URL/_sim/config/PORT.

    Example: ollamactl simulate --instances 3 --base-port 11500 --register --fault 2=http500
    """
    checked_number("sim_instances", count, "instances")
    checked_number("pull_speed", pull_speed)
    if base_port < 0 or base_port + count - 1 > 65535:
        raise UsageError(f"--base-port {base_port} does not leave room for {count} ports")
    from ollamactl import sim as simulator

    faults = _parse_faults(fault or [], count)
    model_sets = _parse_models(models or [], count)
    rates = _parse_rates(token_rate or [], count)
    configs = [simulator.SimConfig(name=f"sim-{n}", fault=faults.get(n), pull_speed=pull_speed * 1e6,
                                   token_rate=rates.get(n), **_models_of(model_sets, n)) for n in range(1, count + 1)]

    added: dict[str, str] = {}

    def ready(instances: list[Any]) -> None:
        urls = [i.url for i in instances]
        for url in urls:
            typer.echo(url)
        sys.stdout.flush()
        if register:
            ids, fresh = _register(urls)
            added.update(fresh)
            output.message(f"registered as {', '.join(ids)}")
        control = simulator.CONTROL_PATH
        output.message(f"change a fault at run time: curl -X POST {urls[-1]}{control} -d '{{\"fault\": \"refuse\"}}'"
                       f" (\"fault\": null clears it; a refusing instance is reached through another one:"
                       f" {urls[0]}{control}/{instances[-1].port})")
        output.message(f"serving {len(urls)} simulated instance(s); press Ctrl-C to stop")

    _stop_on_hangup_or_kill()
    try:
        simulator.serve_forever(count, base_port=base_port, configs=configs, ready=ready, host=_listen_address(host))
    except OSError as exc:  # serve_forever itself ends quietly on Ctrl-C
        raise OllamactlError(f"cannot listen: {exc.strerror or exc}", "choose another --base-port"
                             " (0: any free ports), or a --host address of this machine") from None
    finally:
        if added and not keep:
            _unregister(added)
    output.message("simulator stopped")
