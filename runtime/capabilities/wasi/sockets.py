"""wasi:sockets that deny: creating a socket or resolving a name fails with access-denied.

Spin grants sockets only through allowed_outbound_hosts; this host grants none. (The `network`
and `instance-network` interfaces, which hold no streams, stay in wasmtime's WASI.)
"""

from __future__ import annotations

from typing import Any

from runtime.core.contract import BaseCapability, InterfaceImpl, resource_type_id

DENIED = "access-denied"  # error-code enum case; result<own<...>, error-code> is untagged


def _deny(store: Any, *args: Any) -> Any:
    return DENIED


_OWNED = {
    "wasi:sockets/tcp": ("tcp-socket",),
    "wasi:sockets/udp": ("udp-socket", "incoming-datagram-stream", "outgoing-datagram-stream"),
    "wasi:sockets/ip-name-lookup": ("resolve-address-stream",),
}


class SocketsCapability(BaseCapability):
    name = "wasi-sockets-deny"
    inline_safe = True  # in-memory work only: may run on the event loop (see runtime.http.scheduling)
    interfaces = frozenset(
        {
            "wasi:sockets/tcp",
            "wasi:sockets/udp",
            "wasi:sockets/tcp-create-socket",
            "wasi:sockets/udp-create-socket",
            "wasi:sockets/ip-name-lookup",
        }
    )

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        resources = {
            name: (resource_type_id(interface, name), lambda rep: None) for name in _OWNED.get(interface, ())
        }
        funcs = {
            "create-tcp-socket": _deny,
            "create-udp-socket": _deny,
            "resolve-addresses": _deny,
        }
        # Every other function needs a socket the guest can never obtain; they link as traps.
        return InterfaceImpl(resources=resources, funcs=funcs)
