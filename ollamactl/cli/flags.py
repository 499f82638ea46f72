"""The library's parameters as the command line spells them: the one place a flag is named for an
error or a warning. The core names a parameter in its words (a `Said`: `listen`,
`include_disabled=True`); what the command line shows names the flag (`--listen`, `--all`).

FLAGS holds the spellings every command shares; the running command's own options, as its
declaration spells them, come first (`model` is `--model` in `pick` and `export`, the MODEL
argument of `run`): both routes say which options are running (`running`)."""

from __future__ import annotations

from ollamactl import Said

FLAGS = {"count": "--count", "tries": "--tries", "timeout": "--timeout", "interval": "--interval",
         "wait": "--wait", "connect_timeout": "--connect-timeout", "first_byte_timeout": "--first-byte-timeout",
         "batch_size": "--batch-size", "per_instance": "--per-instance", "concurrency": "--concurrency",
         "api_key_env": "--api-key-env", "api_key": "--api-key-stdin", "id": "--id", "name": "--name",
         "url": "URL", "model": "MODEL", "models": "MODEL", "ref": "ID_OR_NAME", "refs": "ID_OR_NAME",
         "tokens": "--tokens", "repeat": "--repeat", "instances": "--instances", "pull_speed": "--pull-speed",
         "include_disabled": "--all", "listen": "--listen", "fmt": "--format", "output": "--output",
         "secrets_file": "--secrets-file", "strict": "--strict", "key": "--key", "instance": "--instance",
         "allow_mixed": "--allow-mixed", "yes": "--yes", "source": "--from", "force": "--force", "check": "--check",
         "type": "--type"}


_RUNNING: dict[str, str] = {}  # parameter -> the running command's own spelling of its option


def running(options: dict[str, list[str]]) -> None:
    """The running command's options: parameter -> its spellings (`{"model": ["--model", "-m"]}`);
    text names each by its longest, which reads in a sentence (`--format nginx`)."""
    _RUNNING.clear()
    _RUNNING.update({param: max(spellings, key=len) for param, spellings in options.items() if spellings})


def names() -> dict[str, str]:
    """Each parameter's spelling on this command line."""
    return {**FLAGS, **_RUNNING}


def in_flags(text: str) -> str:
    """`text` as the command line shows it: each parameter a `Said` names under its flag."""
    return text.named(names()) if isinstance(text, Said) else text
