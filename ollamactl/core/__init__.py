"""The core: everything ollamactl does, without printing, Typer or rich (see fleet.Fleet)."""

import sys

# `import httpx` also imports its own command line (httpx._main), which pulls in click, rich and
# pygments whenever they are installed: more than half of httpx's import time, for nothing we use.
# A None entry makes that optional import fail at once, and httpx falls back to a stub `main`.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]
