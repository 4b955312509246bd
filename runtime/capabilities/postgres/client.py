"""PostgreSQL through psycopg 3: the pool driver and the two statements the interfaces have.

Connections are in autocommit mode (each statement stands alone, as with tokio-postgres) and use
PostgreSQL's own `$1` placeholders (psycopg's RawCursor), with results in binary format. A
statement runs under the lease's deadline guard; psycopg's errors become the interface's: a
server error keeps its SQLSTATE, severity and fields (v4's `db-error`), anything else is text.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Hashable
from typing import Any

import psycopg
from psycopg import RawCursor
from psycopg.pq import TransactionStatus

from runtime.capabilities.outbound_db.pool import Lease
from runtime.capabilities.outbound_db.rdbms import (
    Column,
    DbError,
    ErrorKind,
    RowSet,
    ServerError,
    Value,
    check_budget,
    value_size,
)
from runtime.capabilities.postgres import values
from runtime.capabilities.postgres.address import DEFAULT_PORT
from runtime.capabilities.support.blocked_networks import BlockedNetworks, checked_addresses

Conn = psycopg.Connection[Any]

# Statements that leave state in the session (beyond a transaction, which psycopg reports):
# the connection is reset with DISCARD ALL before another request gets it.
_SESSION_WORDS = ("SET", "RESET", "LISTEN", "PREPARE", "DECLARE", "LOCK", "LOAD", "DISCARD")


def _checked_hostaddrs(params: dict[str, str], blocked: BlockedNetworks) -> str:
    """libpq's `hostaddr` for `params`: a checked address for each host, in order, so libpq
    connects there without looking the name up again (and still verifies TLS against `host`)."""
    hosts = params["host"].split(",")
    ports = params.get("port", "").split(",")
    addresses = []
    for i, host in enumerate(hosts):
        port = ports[i] if i < len(ports) and ports[i] else (ports[0] or str(DEFAULT_PORT))
        addresses.append(checked_addresses(host, int(port), blocked)[0])
    return ",".join(addresses)


@functools.lru_cache(maxsize=1024)
def changes_session(statement: str) -> bool:
    head = statement.lstrip().upper()
    return head.startswith(_SESSION_WORDS) or " TEMP" in head or "SET_CONFIG" in head


class PostgresDriver:
    name = "postgres"

    def __init__(self) -> None:
        self._adapters = values.adapters()

    def connect(self, key: Hashable, timeout_s: float, blocked: BlockedNetworks) -> Conn:
        params = dict(key)  # type: ignore[call-overload]
        if blocked:
            params["hostaddr"] = _checked_hostaddrs(params, blocked)
        conn = psycopg.Connection.connect(
            autocommit=True,
            context=self._adapters,
            cursor_factory=RawCursor,
            connect_timeout=max(2, math.ceil(timeout_s)),  # libpq's minimum is 2 s
            **params,
        )
        return conn

    def fileno(self, conn: Conn) -> int:
        return conn.fileno()

    def close(self, conn: Conn) -> None:
        conn.close()

    def reset(self, conn: Conn, lease: Lease[Conn]) -> bool:
        # (libpq's status as it is: `conn.info` builds an object and an enum on every release)
        status = conn.pgconn.transaction_status
        if status == TransactionStatus.IDLE and not lease.dirty:
            return True
        if status not in (TransactionStatus.IDLE, TransactionStatus.INTRANS, TransactionStatus.INERROR):
            return False
        if time.monotonic() >= lease.deadline:
            return False  # no time left to talk to the server: close it instead
        with lease.guard():
            if status != TransactionStatus.IDLE:
                conn.rollback()
            if lease.dirty:
                conn.execute("DISCARD ALL")
        return True


def _server_error(exc: psycopg.Error) -> ServerError | None:
    diag = exc.diag
    if diag.sqlstate is None:
        return None
    extras = [
        (name, value)
        for name, value in (
            ("column", diag.column_name), ("constraint", diag.constraint_name), ("routine", diag.source_function),
            ("hint", diag.message_hint), ("table", diag.table_name), ("datatype", diag.datatype_name),
            ("schema", diag.schema_name), ("file", diag.source_file), ("line", diag.source_line),
            ("where_", diag.context),
        )
        if value is not None
    ]
    return ServerError(
        severity=diag.severity or "ERROR", code=diag.sqlstate, message=diag.message_primary or "",
        detail=diag.message_detail, extras=extras,
    )


def _run(lease: Lease[Conn], statement: str, params: list[Any]) -> RawCursor[Any]:
    if changes_session(statement):
        lease.dirty = True
    cur = RawCursor(lease.conn)
    try:
        with lease.guard() as guard:
            cur.execute(statement, params, binary=True)
    except psycopg.Error as exc:
        broken = lease.conn.closed or lease.conn.broken
        if broken:
            lease.broken = True
        if guard.fired or (broken and time.monotonic() >= lease.deadline):
            raise DbError(ErrorKind.QUERY_FAILED, "PostgreSQL did not answer before the request's deadline") from None
        text = str(exc).strip() or type(exc).__name__
        raise DbError(ErrorKind.QUERY_FAILED, text, _server_error(exc)) from None
    return cur


def _params(params: list[Value], failure: ErrorKind) -> list[Any]:
    try:
        return [values.to_param(p) for p in params]
    except values.ConversionError as exc:
        raise DbError(failure, str(exc)) from None


def execute(lease: Lease[Conn], statement: str, params: list[Value]) -> int:
    # Spin reports a parameter it cannot convert as value-conversion-failed here, bad-parameter in query.
    cur = _run(lease, statement, _params(params, ErrorKind.VALUE_CONVERSION_FAILED))
    return max(cur.rowcount, 0)


def query(lease: Lease[Conn], statement: str, params: list[Value]) -> RowSet:
    cur = _run(lease, statement, _params(params, ErrorKind.BAD_PARAMETER))
    description = cur.description or []
    tags = [values.DATA_TYPES.get(c.type_code, "other") for c in description]
    converters = [values.converter(tag) for tag in tags]
    rows: list[list[Value]] = []
    total = 0
    try:
        for raw in cur:  # already received: loading it talks to no server
            row = [convert(v) for convert, v in zip(converters, raw, strict=True)]
            for v in row:
                total += value_size(v)
            check_budget(total)
            rows.append(row)
    except DbError:
        raise
    except (psycopg.Error, values.ConversionError, ValueError, OverflowError) as exc:
        raise DbError(ErrorKind.QUERY_FAILED, str(exc) or type(exc).__name__) from None
    # As Spin, column metadata comes from the first row: a query without rows has no columns.
    columns = (
        [
            Column(c.name, tag, values.type_name(c.type_code, c.type_display) if tag == "other" else "")
            for c, tag in zip(description, tags, strict=True)
        ]
        if rows
        else []
    )
    return RowSet(columns, rows)
