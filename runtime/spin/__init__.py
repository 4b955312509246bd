"""Spin host APIs (variables, key-value, sqlite, outbound HTTP, ...) and the non-wasi:http executors.

One module per host capability. The pure parts (variable resolution, allowed-hosts matching, the
key-value / sqlite backends, WAGI's CGI environment and stdout parsing) have no wasm dependency and
are tested on their own; the `*_bindings` parts plug them into the runtime's linker.
"""
