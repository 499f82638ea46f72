"""The fleet as configuration for other tools: build (LiteLLM, plain JSON, and the entry point),
common (what every format shares: options, result, which instances go in), gateway (the pools
behind an nginx or HAProxy gateway), nginx, haproxy (those two formats), files (where `-o` and the
secrets file are written).
"""
