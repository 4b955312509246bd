"""Guest bindings for outbound MySQL: `fermyon:spin/mysql@2.0.0` (a `connection` resource) and
the unversioned Spin 1.x `fermyon:spin/mysql` (every call names its address).

As Spin's `factor-outbound-mysql`: `open` checks the address against the component's
`allowed_outbound_hosts` (scheme `mysql`, default port 3306) before anything touches the network
(`connection-failed("address ... is not permitted")`), then connects (or takes a pooled
connection); statement failures are `query-failed` with the server's message and error number.

`spin:mysql/mysql@3.0.0` is not served: its functions are component-model `async` (its query
returns a stream), which this runtime (wasmtime-py 50) cannot define; a component importing it is refused at load.
"""

from __future__ import annotations

import functools
from typing import Any

from runtime.capabilities.outbound_db import guest
from runtime.capabilities.outbound_db.pool import Lease, max_connections
from runtime.capabilities.outbound_db.rdbms import (
    Value,
    Version,
    lower_row_set,
    param,
    result,
)
from runtime.core import context
from runtime.core.contract import InterfaceImpl, resource_type_id
from runtime.core.values import own

NAME = "spin-outbound-mysql"
V2_CONNECTION = resource_type_id("fermyon:spin/mysql", "connection")


def _client() -> Any:
    from runtime.capabilities.mysql import client  # mysqlclient loads at the first call, not at link time

    return client


@functools.lru_cache(maxsize=64)
def _driver(timeout_s: float) -> Any:
    # (kept: an open would otherwise build one; the app's pool keeps the first it is given)
    return _client().MysqlDriver(timeout_s)


def _open(address: str) -> Lease[Any]:
    from runtime.capabilities.mysql.address import parse_and_check

    driver = _driver(context.current().settings.timeout_s)
    return guest.open_rdbms("mysql", NAME, address, parse_and_check, driver, max_connections("outbound_mysql"))


def _params(params: list[Any]) -> list[Value]:
    return [param(p) for p in params]


def _v2_funcs() -> dict[str, Any]:
    v = Version.V2

    def open_(store: Any, address: str) -> Any:
        return result(lambda: own(guest.hold(_open(address)), V2_CONNECTION), v)

    def query(store: Any, handle: Any, statement: str, params: list[Any]) -> Any:
        lease = guest.get(store, handle, Lease)
        return result(lambda: lower_row_set(_client().query(lease, statement, _params(params)), v), v)

    def execute(store: Any, handle: Any, statement: str, params: list[Any]) -> Any:
        lease = guest.get(store, handle, Lease)
        return result(lambda: _client().execute(lease, statement, _params(params)), v)

    return {
        "[static]connection.open": open_,
        "[method]connection.query": query,
        "[method]connection.execute": execute,
    }


def _v1_funcs() -> dict[str, Any]:
    return guest.spin1_rdbms_funcs(_open, _params, _client, lambda _none: None)


class MysqlCapability(guest.OutboundDbCapability):
    name = NAME
    interfaces = frozenset({"fermyon:spin/mysql"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if version is None:
            return InterfaceImpl(funcs=_v1_funcs())
        return InterfaceImpl(resources={"connection": (V2_CONNECTION, guest.drop)}, funcs=_v2_funcs())

