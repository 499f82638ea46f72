"""Put first on PYTHONPATH of a child process (with tests/ after it): loopback_only guards it from its start."""

import loopback_only  # noqa: F401 - importing it installs the guard
