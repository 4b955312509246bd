"""The Spin interface this host has no backend for: llm (`fermyon:spin/llm@2.0.0`, Spin 1.x `llm`).

SDKs import llm (a Python spin-sdk component imports every Spin interface), so it must link, and
a call must return the interface's own error value rather than trap, as Spin does when no backend
is configured.

Interfaces whose functions are component-model `async` (Spin 4's `spin:redis/redis@3.0.0`,
`spin:mysql/mysql@3.0.0`, `spin:mqtt/mqtt@3.0.0`, key-value and variables @3.0.0) are not here:
wasmtime-py defines only synchronous host functions and wasmtime refuses those for an async
import, so a component importing one is refused at load (runtime/core/linking.py reports them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.capabilities.support.wit import case, err
from runtime.core import context
from runtime.core.contract import BaseCapability, InterfaceImpl

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
    llm = lambda: case("runtime-error", _message("llm"))  # noqa: E731
    return {
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
        return InterfaceImpl(funcs={name: _failing(interface, name, value) for name, value in funcs.items()})
