"""Spin outbound HTTP: the blocking client (client.py) and the wasi:http / Spin host bindings (host.py)."""
