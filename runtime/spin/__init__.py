"""Spin host APIs (variables, key-value, sqlite, outbound HTTP, ...) and the non-wasi:http executors.

One module per host capability. The pure parts (variable resolution, allowed-hosts matching, the
key-value / sqlite backends, WAGI's CGI environment and stdout parsing) have no wasm dependency and
are tested on their own; the `*_bindings` parts plug them into the runtime's linker.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """`CAPABILITIES` / `EXECUTORS` for runtime.capabilities, built lazily so that importing a
    pure module (runtime.spin.variables, ...) does not pull in wasmtime-bound code."""
    if name == "CAPABILITIES":
        from runtime.spin.host_key_value import KeyValueCapability
        from runtime.spin.host_outbound_http import OutboundHttpCapability
        from runtime.spin.host_sqlite import SqliteCapability
        from runtime.spin.host_variables import VariablesCapability
        from runtime.spin.unsupported import UnsupportedCapability

        return (
            VariablesCapability(),
            KeyValueCapability(),
            SqliteCapability(),
            OutboundHttpCapability(),
            UnsupportedCapability(),
        )
    if name == "EXECUTORS":
        from runtime.spin.inbound_http import InboundHttpProvider
        from runtime.spin.spin1 import Spin1Provider
        from runtime.spin.wagi_executor import WagiProvider

        return (WagiProvider(), Spin1Provider(), InboundHttpProvider())
    raise AttributeError(name)
