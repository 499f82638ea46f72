"""Models across the fleet: inventory (which model is on which instance, loaded or not, digests
that differ) and ops (the survey, and the plans behind pull, sync, rm, load and unload).
"""
