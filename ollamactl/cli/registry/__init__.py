"""Commands on the registry: registry_cmds (add, list, update, enable, disable, remove, paths),
quick (the Typer-free bodies of `list` and `paths`, and `--version`), discover_cmd (`discover`).
"""
