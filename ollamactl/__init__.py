"""ollamactl: one registry, health view and router for a fleet of Ollama servers."""

__version__ = "0.1.0"
