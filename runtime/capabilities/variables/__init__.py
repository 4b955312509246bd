"""Spin application variables: resolution rules (resolve.py, pure) and the host bindings (host.py)."""
