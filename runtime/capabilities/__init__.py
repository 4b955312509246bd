"""Host interfaces, one package per Spin factor, each with its pure logic beside its host bindings.

- ``wasi/``: the Python WASI 0.2 host for interfaces involving streams, pollables or errors
  (io, cli, clocks, filesystem, sockets, http types); wasmtime's own WASI keeps the rest.
- ``variables/``: Spin application variables (``resolve.py`` pure, ``host.py`` bindings).
- ``key_value/``: Spin key-value on SQLite files (``store.py``, ``host.py``).
- ``sqlite/``: Spin SQLite databases (``store.py``, ``host.py``).
- ``outbound_http/``: outbound HTTP through the allow-list (``client.py``, ``host.py``).
- ``unsupported.py``: interfaces with no backend here; calls return the interface's error.
- ``support/``: shared by several: load errors, allowed_outbound_hosts, label-scoped storage,
  per-app objects, WIT value helpers.

Each capability implements runtime.core.contract.Capability and imports only the core (and
``support``); runtime/runtime.py lists them.
"""
