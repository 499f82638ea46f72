"""ollamactl: one registry, health view and router for a fleet of Ollama servers.

As a library: `from ollamactl import Fleet` (see ollamactl.core.fleet). The import is lazy so
that `import ollamactl` (and the `pick` fast path) stays cheap.
"""

__version__ = "0.1.0"
__all__ = ["Fleet", "__version__"]


def __getattr__(name):  # type: ignore[no-untyped-def]
    if name == "Fleet":
        from ollamactl.core.fleet import Fleet

        return Fleet
    raise AttributeError(f"module 'ollamactl' has no attribute {name!r}")
