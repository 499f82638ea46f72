"""The honest install: a throwaway venv holding a normal (non-editable) `pip install .` of this checkout.

An editable install puts setuptools' finder in front of every interpreter start, the baseline
`python -c pass` included (~35 ms here), so ratios measured there shrink while ollamactl is no
faster: benchmarks of start-up time run here instead, against this venv's own `python -c pass`.

The venv lives under `$XDG_CACHE_HOME/ollamactl-bench/` (else `~/.cache/ollamactl-bench/`), never
inside the checkout, and is reused while the installed sources are unchanged (its name is a hash
of them); venvs of other sources are removed once unused for a day (two checkouts may benchmark
at once). The checkout is copied to a temporary directory first, so the build leaves nothing in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "ollamactl", "completions")
EXTRAS = ""  # extras to install; none: the Redis store needs no client library (core/state/resp.py)


class Venv(NamedTuple):
    python: str  # the venv's interpreter
    ollamactl: str  # its console script
    where: Path


def _files() -> list[Path]:
    found = []
    for name in SOURCES:
        path = ROOT / name
        found += sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else [path]
    return found


def _key() -> str:
    """A hash of the interpreter and what shapes the installed code (not the README's text)."""
    digest = hashlib.sha256(sys.version.encode() + EXTRAS.encode())
    for path in _files():
        if path.name == "README.md":
            continue
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return Path(base if os.path.isabs(base) else os.path.expanduser("~/.cache")) / "ollamactl-bench"


def honest_venv() -> Venv:
    """The venv for this checkout's current sources, built on first use (a minute; then reused)."""
    where = cache_dir() / f"venv-{_key()}"
    bindir = where / ("Scripts" if os.name == "nt" else "bin")
    venv = Venv(str(bindir / "python"), str(bindir / "ollamactl"), where)
    if not (where / "ready").exists():
        if where.exists():
            shutil.rmtree(where)
        _remove_unused()
        print(f"building {where} (pip install . of a copy of the checkout) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        with tempfile.TemporaryDirectory(prefix="ollamactl-src-") as copy:
            for path in _files():
                target = Path(copy) / path.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            subprocess.run([venv.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", copy + EXTRAS],
                           check=True)
        (where / "ready").write_text("ok\n")
    (where / "ready").touch()  # in use: see _remove_unused
    refuse_editable(venv)
    return venv


def _remove_unused(days: float = 1.0) -> None:
    """Remove earlier sources' venvs not used for `days`: one used in the last day may belong to a
    benchmark running now from another checkout (the cache is per user, not per checkout)."""
    import time

    for old in cache_dir().glob("venv-*"):
        try:
            unused = time.time() - (old / "ready").stat().st_mtime > days * 86400
        except OSError:  # half-built, or being built now
            unused = time.time() - old.stat().st_mtime > days * 86400
        if unused:
            shutil.rmtree(old, ignore_errors=True)


def refuse_editable(venv: Venv) -> None:
    """Stop with a reason unless ollamactl in `venv` is a normal install (not editable, not the checkout)."""
    probe = ("import json, ollamactl, importlib.metadata as m; d = m.distribution('ollamactl');"
             "print(json.dumps([ollamactl.__file__, d.read_text('direct_url.json')]))")
    where, direct = json.loads(subprocess.run([venv.python, "-c", probe], capture_output=True, text=True,
                                              check=True, cwd=tempfile.gettempdir()).stdout)
    if json.loads(direct or "{}").get("dir_info", {}).get("editable") or Path(where).is_relative_to(ROOT):
        raise SystemExit(f"refusing to benchmark an editable install ({where}): start-up ratios would be wrong")
