"""Routing: from a request (type, model, strategy, key) to the instances that should serve it.

selection (pure functions: eligibility, fallbacks, strategies), router (the same with the state
and the health cache at its edges), pick_memo (what a `pick` chooses from, kept so a large fleet's
pick skips per-instance work), leases (the work in flight per instance, and waiting for room).
"""
