"""The command line: parsing and rendering on top of the core (through `Fleet`).

The plumbing every command shares: launcher (the entry point: `pick`, `--version` and ordinary
command lines of the commands in `commands.BODIES` take the Typer-free fast_route, everything
else app, the Typer root that imports only the invoked command's module), commands (the command
table), command_specs (those commands' options, generated from the Typer app) read by
spec_parser, exits (the one place that maps errors, Ctrl-C and broken pipes to exit codes), flags
(the library's parameters as flags, in errors and warnings), output (the only rich importer,
the one sanitiser of untrusted text, the one message channel),
context (the command's `Fleet`), help_style (one usage and metavar style), suggest (what a
mistyped command or option was likely meant to be), completers (shell completion from local
files), confirm (asking before a delete or a download).

The commands, by what they work on: registry (add, list, update, remove, discover), health
(health, refresh, models, metrics, top), models (ps, pull, sync, rm, load, unload), routing
(pick, exec, run, embed, bench), integrations (export, completion, simulate).
"""
