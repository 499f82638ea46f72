"""Health: whether each instance is up, what it holds and runs, and for how long that is known.

probe (the active checks) over probe_http (their HTTP client), cache (the one freshness rule, and
"cached or probe"), background and refresher (one refresh at a time, detached from `pick`),
monitor (per-instance schedules for `--watch` and `top`), liveness (does a server still answer
while an answer is awaited), breaker (passive health fed by real requests).
"""
