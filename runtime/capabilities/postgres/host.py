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

import functools
from typing import TYPE_CHECKING, Any

from runtime.capabilities.outbound_db import guest
from runtime.capabilities.outbound_db.pool import Lease, max_connections
from runtime.capabilities.outbound_db.rdbms import (
    DbError,
    ErrorKind,
    Value,
    Version,
    lower_row_set,
    param,
    result,
)
from runtime.core.contract import InterfaceImpl, resource_type_id
from runtime.core.values import own

if TYPE_CHECKING:
    from runtime.capabilities.postgres.client import Conn

NAME = "spin-outbound-pg"
V2_CONNECTION = resource_type_id("fermyon:spin/postgres", "connection")
SPIN_CONNECTION = resource_type_id("spin:postgres/postgres", "connection")  # @3.0.0 and @4.0.0
_UNSIGNED = frozenset({"uint8", "uint16", "uint32", "uint64"})


def _client() -> Any:
    from runtime.capabilities.postgres import client  # psycopg loads at the first call, not at link time

    return client


@functools.cache
def _opening() -> tuple[Any, Any]:
    """The address check and the driver, imported at the first open (psycopg loads then, not at
    link time) and kept: one driver per process, it holds psycopg's adapter map, built once."""
    from runtime.capabilities.postgres.address import parse_and_check
    from runtime.capabilities.postgres.client import PostgresDriver

    return parse_and_check, PostgresDriver()


def _open(address: str) -> Lease[Conn]:
    parse, driver = _opening()
    return guest.open_rdbms("postgres", NAME, address, parse, driver, max_connections("outbound_pg"))


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
    return guest.spin1_rdbms_funcs(_open, lambda raw: _params(raw, Version.V1), _client, lambda n: n)


class PostgresCapability(guest.OutboundDbCapability):
    name = NAME
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

