"""What the fleet served and how fast: counters (per-instance outcomes, first-token times, tokens/s,
recorded with the breaker's state write), report (as objects, JSON and the Prometheus text
format), speed (`bench`: measured generation speed, and the registry weights that follow from it).
"""
