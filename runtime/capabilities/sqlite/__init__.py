"""Spin SQLite: the databases (store.py) and the host bindings (host.py)."""
