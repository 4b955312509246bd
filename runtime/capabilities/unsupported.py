"""Spin interfaces this host does not implement: llm, and the component-model-async versions of
redis, mysql and mqtt (`spin:redis/redis@3.0.0`, `spin:mysql/mysql@3.0.0`, `spin:mqtt/mqtt@3.0.0`,
whose `async` functions wasmtime-py 50 cannot define; the synchronous versions are served by
runtime/capabilities/{redis,mysql,mqtt}/).

SDKs import llm (a Python spin-sdk component imports every Spin interface), so it must link, and
a call must return the interface's own error value rather than trap, as Spin does when no backend
is configured. Only the entry points can be called: every connection-based interface fails at
`open`, so its methods (left to the runtime's traps) are unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.capabilities.support.wit import case, err
from runtime.core import context
from runtime.core.contract import BaseCapability, Drop, InterfaceImpl, resource_type_id

NAME = "spin-unsupported"


def _message(what: str) -> str:
    return f"{what} is not supported by this host (lepton-router)"


def _failing(interface: str, function: str, value: Callable[[], Any]) -> Callable[..., Any]:
    def fn(store: Any, *args: Any) -> Any:
        # One line per call, as for a denied outbound request: the guest may swallow the error.
        context.current().log.info(
            "%s %s: no backend for this interface on this host; the guest gets an error", interface, function
        )
        return err(value())

    return fn


# (versionless interface, versioned?) -> {function name: error value}
def _table() -> dict[tuple[str, bool], dict[str, Callable[[], Any]]]:
    redis = lambda: case("other", _message("spin:redis@3.0.0 (async)"))  # noqa: E731
    mysql = lambda: case("connection-failed", _message("spin:mysql@3.0.0 (async)"))  # noqa: E731
    mqtt = lambda: case("connection-failed", _message("spin:mqtt@3.0.0 (async)"))  # noqa: E731
    llm = lambda: case("runtime-error", _message("llm"))  # noqa: E731
    return {
        ("spin:redis/redis", True): {"[static]connection.open": redis},
        ("spin:mysql/mysql", True): {"[static]connection.open": mysql},
        ("spin:mqtt/mqtt", True): {"[static]connection.open": mqtt},
        ("fermyon:spin/llm", True): {"infer": llm, "generate-embeddings": llm},
        ("fermyon:spin/llm", False): {"infer": llm, "generate-embeddings": llm},
    }


_TABLE = _table()


class UnsupportedCapability(BaseCapability):
    name = NAME
    blocking = False
    interfaces = frozenset(interface for interface, _ in _TABLE)

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        funcs = _TABLE.get((interface, version is not None)) or _TABLE.get((interface, True), {})
        resources: dict[str, tuple[int, Drop]] = {}
        if "[static]connection.open" in funcs:
            # The resource must exist for the component to link; no value of it is ever made.
            resources["connection"] = (resource_type_id(interface, "connection"), _no_drop)
        return InterfaceImpl(
            resources=resources, funcs={name: _failing(interface, name, value) for name, value in funcs.items()}
        )


def _no_drop(rep: int) -> None:
    pass
