"""Sending work to the fleet on a user's behalf, with failover: generate (streamed generate and
chat), embed (embeddings fanned out in batches), child (`exec`: a user's command run against a
chosen instance), plain_transport (the client transport when no instance needs TLS).
"""
