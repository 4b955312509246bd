"""wasmtime, knowing nothing of Spin: how components are compiled, cached, instantiated and timed.

- ``config.py``: the process-wide Engine (pooling allocator when the machine allows it).
- ``epoch.py``: the epoch ticker and deadlines in ticks (request timeouts).
- ``precompiled.py``: CompiledCache, ``<cache>/compiled`` keyed by digest, wasmtime version and
  engine config, with a checksum sidecar per entry.
- ``instance_pool.py``: the pooling allocator's limits; ``pagemap_scan.py``: its PAGEMAP_SCAN memory
  reset, which the C API cannot switch on; ``worker_pool.py``: guest threads (LIFO).
- ``component_binary.py``: reading component binaries (sections, import prefix, exports).
- ``byte_bridge.py``: wraps a component at compile time so stream bytes cross as strings.
- ``patches/``: contained fixes to wasmtime-py internals (thread safety, conversion speed).
"""
