"""Commands on models across the fleet: model_cmds (ps, pull, sync, rm, load, unload), ps_show
(`ps`'s Typer-free body), model_plans (the plan table of `sync` and `models --diff`), pull_view
(pull progress: live rows, plain lines or NDJSON), model_options (`-o` types and `--keep-alive`
forms), missing_model (what run and embed say about a model nobody has).
"""
