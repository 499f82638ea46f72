"""The registry: which instances the fleet has and how to reach them.

instances (the model and its checks, lookup, safe TOML edits), file (the file read as untrusted
input), regions (editing one run of `[[instances]]`), edits (what add/update/enable/disable/remove
do), snapshot (the last read kept in marshal form), urls (OLLAMA_HOST-style URLs and the ids made
from them), keys (the key each instance is sent and the scrubber that keeps keys out of server
words), lookup (a bounded ask of the system resolver).

DEFAULT_PORT is written here, once: urls gives it to a URL without a port, instances to the default
instance. It is not in urls because `pick` loads instances on every run and urls (which compiles
its patterns on import) only when it must.
"""

DEFAULT_PORT = 11434  # Ollama's own default (OLLAMA_HOST)
