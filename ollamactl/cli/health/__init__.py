"""Commands on the fleet's health: health_cmds (health, refresh, models), health_show (their
Typer-free bodies), health_view (the health table fitted to the terminal, JSON rows, the watch
view), metrics_cmd (`metrics`: Prometheus text, JSON, --serve), top_cmd (`top`: the live view).
"""
