"""Spin key-value: the SQLite-backed stores (store.py) and the host bindings (host.py)."""
