"""The state: what short-lived processes share between runs (health cache, rotation cursors,
breaker counts, leases, metrics), and where it is kept.

schema (its shape and checks), store (one interface, the file store), view (the state file's
checked contents in marshal form), cursors (the file store's rotation cursors), redis_store with
resp (a small RESP2 client) and redis_url (the team store), atomic_files and marshal_cache (the
crash-safe file primitives everything on disk goes through).
"""
