"""Health: whether each instance is up, what it holds and runs, and for how long that is known.

probe (the active checks) over probe_wire (their small HTTP/1.1: requests, and answers read
without I/O) and its two clients, probe_threads (on threads: the one-shot `health`, `refresh` and
`ps` of up to 32 instances, without asyncio's import) and probe_http (on asyncio: larger fleets,
`--watch`, `top`, discovery, liveness), cache (the one freshness rule, and
"cached or probe"), background and refresher (one refresh at a time, detached from `pick`),
monitor (per-instance schedules for `--watch` and `top`), liveness (does a server still answer
while an answer is awaited), breaker (passive health fed by real requests).
"""
