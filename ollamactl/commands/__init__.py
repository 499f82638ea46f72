"""CLI command modules; each registers its commands on `ollamactl.cli.app` when imported."""
