"""The Python wasi@0.2.x host: every interface whose types involve streams, pollables or errors.

wasmtime's own WASI (add_wasip2) keeps the interfaces that do not (environment, exit, wall
clock, random, terminal, sockets/network): its resource types cannot mix with Python ones.
"""

from __future__ import annotations

from runtime.capabilities import Capability


def builtin_capabilities() -> list[Capability]:
    from runtime.wasi.cli import CliCapability
    from runtime.wasi.clocks import ClocksCapability
    from runtime.wasi.filesystem import FilesystemCapability
    from runtime.wasi.http_types import HttpTypesCapability
    from runtime.wasi.io import IoCapability
    from runtime.wasi.sockets import SocketsCapability

    return [
        IoCapability(),
        CliCapability(),
        ClocksCapability(),
        HttpTypesCapability(),
        FilesystemCapability(),
        SocketsCapability(),
    ]
