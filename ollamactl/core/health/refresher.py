"""The background refresher that core/health/background.py starts:
`python -m ollamactl.core.health.refresher CONFIG STATE_DIR`.

It checks every enabled instance of the registry (results saved as they arrive) and exits. It
prints nothing: its stdio is /dev/null. It holds the refresh lock through the file it inherited.
"""

from __future__ import annotations

import sys

from ollamactl.core.errors import OllamactlError
from ollamactl.core.fleet import Fleet


def main(argv: list[str]) -> int:
    config, state_dir = argv
    try:
        Fleet(config, state_dir).refresh()
    except (OllamactlError, KeyboardInterrupt):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
