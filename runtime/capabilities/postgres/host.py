"""Guest bindings for outbound PostgreSQL: `spin:postgres/postgres@4.0.0` and `@3.0.0`,
`fermyon:spin/postgres@2.0.0` (a `connection` resource each) and the unversioned Spin 1.x
`fermyon:spin/postgres` (every call names its address).

As Spin's `factor-outbound-pg`: `open` checks every host of the connection string against the
component's `allowed_outbound_hosts` (scheme `postgres`, default port 5432) before anything
touches the network, and a denied, malformed or Unix-socket address is `connection-failed`;
`open` connects (or takes a pooled connection); the older versions' values are the newest
version's, converted (a case they lack reads as `unsupported`; an unsigned integer parameter is
`value-conversion-failed`, PostgreSQL has none). Errors carry the server's message, and v4's
`query-failed` its structured `db-error`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.outbound_db import guest
from runtime.capabilities.outbound_db.pool import (
    ConnectFailed,
    Lease,
    PoolExhausted,
    max_connections,
    pool_for,
)
from runtime.capabilities.outbound_db.rdbms import (
    DbError,
    ErrorKind,
    Value,
    Version,
    lower_row_set,
    param,
    result,
)
from runtime.capabilities.outbound_db.watchdog import ConnectTimeout
from runtime.core import context
from runtime.core.contract import BaseCapability, InterfaceImpl, resource_type_id
from runtime.core.values import own
from runtime.types import AppSettings

if TYPE_CHECKING:
    from runtime.capabilities.postgres.client import Conn

NAME = "spin-outbound-pg"
V2_CONNECTION = resource_type_id("fermyon:spin/postgres", "connection")
SPIN_CONNECTION = resource_type_id("spin:postgres/postgres", "connection")  # @3.0.0 and @4.0.0
_UNSIGNED = frozenset({"uint8", "uint16", "uint32", "uint64"})


def _client() -> Any:
    from runtime.capabilities.postgres import client  # psycopg loads at the first call, not at link time

    return client


def _open(address: str) -> Lease[Conn]:
    from runtime.capabilities.postgres.address import parse_and_check
    from runtime.capabilities.postgres.client import PostgresDriver

    ctx = context.current()
    try:
        key = parse_and_check(address, guest.allowed(NAME))
    except DbError as exc:
        guest.note_failed_open("postgres", address, exc.message)
        raise
    try:
        return pool_for(ctx.app, _driver(PostgresDriver), max_connections("outbound_pg")).acquire(key, ctx.deadline)
    except PoolExhausted:
        guest.note_failed_open("postgres", address, "too many connections")
        raise DbError(ErrorKind.CONNECTION_FAILED, "too many connections") from None
    except (ConnectTimeout, ConnectFailed) as exc:
        guest.note_failed_open("postgres", address, str(exc))
        raise DbError(ErrorKind.CONNECTION_FAILED, str(exc)) from None


_drivers: dict[type, Any] = {}


def _driver(cls: type) -> Any:
    # One driver object per process: it holds psycopg's adapter map, built once.
    if cls not in _drivers:
        _drivers[cls] = cls()
    return _drivers[cls]


def _params(params: list[Any], version: Version) -> list[Value]:
    converted = [param(p) for p in params]
    if version in (Version.V1, Version.V2) and any(p.tag in _UNSIGNED for p in converted):
        raise DbError(ErrorKind.VALUE_CONVERSION_FAILED, "Postgres does not support unsigned integers")
    return converted


def _resource_funcs(version: Version, type_id: int) -> dict[str, Any]:
    def open_(store: Any, address: str) -> Any:
        return result(lambda: own(guest.hold(_open(address)), type_id), version)

    def query(store: Any, handle: Any, statement: str, params: list[Any]) -> Any:
        lease = guest.get(store, handle, Lease)
        return result(lambda: lower_row_set(_client().query(lease, statement, _params(params, version)), version), version)

    def execute(store: Any, handle: Any, statement: str, params: list[Any]) -> Any:
        lease = guest.get(store, handle, Lease)
        return result(lambda: _client().execute(lease, statement, _params(params, version)), version)

    return {
        "[static]connection.open": open_,
        "[method]connection.query": query,
        "[method]connection.execute": execute,
    }


def _v1_funcs() -> dict[str, Any]:
    def with_address(op: Callable[[Lease[Conn], str, list[Value]], Any], lower: Callable[[Any], Any]) -> Any:
        def call(store: Any, address: str, statement: str, params: list[Any]) -> Any:
            def run() -> Any:
                converted = _params(params, Version.V1)
                lease = _open(address)
                try:
                    return lower(op(lease, statement, converted))
                finally:
                    lease.release()

            return result(run, Version.V1)

        return call

    return {
        "query": with_address(lambda *a: _client().query(*a), lambda rows: lower_row_set(rows, Version.V1)),
        "execute": with_address(lambda *a: _client().execute(*a), lambda n: n),
    }


class PostgresCapability(BaseCapability):
    name = NAME
    blocking = True  # waits on the network: components importing it run on worker threads
    interfaces = frozenset({"fermyon:spin/postgres", "spin:postgres/postgres"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "spin:postgres/postgres":
            v = Version.PG3 if (version or "").startswith("3.") else Version.PG4
            return InterfaceImpl(
                resources={"connection": (SPIN_CONNECTION, guest.drop)}, funcs=_resource_funcs(v, SPIN_CONNECTION)
            )
        if version is None:
            return InterfaceImpl(funcs=_v1_funcs())
        return InterfaceImpl(
            resources={"connection": (V2_CONNECTION, guest.drop)}, funcs=_resource_funcs(Version.V2, V2_CONNECTION)
        )

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        return guest.prepare(app, component, settings)
