"""MySQL through mysqlclient (libmariadb): the pool driver, the two statements, and values as
Spin's `factor-outbound-mysql` converts them (`client.rs`).

Result columns map by their MySQL type and flags, as Spin does: integers by size and
signedness, FLOAT and DOUBLE, character columns to `str` or, with the binary flag, `binary`;
every other type (DECIMAL, DATE, TIME, JSON, ...) fails the query with `value-conversion-failed`
unless the value is NULL (Spin's MySQL has no `unsupported` values). `boolean` never appears in
results (BOOL is TINYINT). Connections are in autocommit mode, with the utf8mb4 character set.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Hashable
from typing import Any

import MySQLdb
from MySQLdb.constants import FLAG

from runtime.capabilities.mysql.address import Address
from runtime.capabilities.mysql.statement import ParameterCountError, bind
from runtime.capabilities.outbound_db.pool import Lease
from runtime.capabilities.outbound_db.rdbms import (
    NULL,
    Column,
    DbError,
    ErrorKind,
    RowSet,
    Value,
    check_budget,
    value_size,
)
from runtime.capabilities.support.blocked_networks import BlockedNetworks, checked_host

Conn = Any  # MySQLdb.connections.Connection (untyped)

# MySQL field type codes.
DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, LONGLONG, INT24 = 0, 1, 2, 3, 4, 5, 8, 9
VARCHAR, BLOB, VAR_STRING, STRING = 15, 252, 253, 254
_INTEGERS = {TINY: ("int8", "uint8"), SHORT: ("int16", "uint16"), INT24: ("int32", "uint32"),
             LONG: ("int32", "uint32"), LONGLONG: ("int64", "uint64")}
# Client errors after which the connection is gone (server gone away, lost connection, ...).
_CONNECTION_ERRORS = frozenset({2006, 2013, 2055, 2026, 4031})
_SESSION_WORDS = ("START", "BEGIN", "SET", "LOCK", "XA", "SAVEPOINT", "USE", "PREPARE", "HANDLER", "CALL")


@functools.lru_cache(maxsize=1024)
def changes_session(statement: str) -> bool:
    head = statement.lstrip().upper()
    return head.startswith(_SESSION_WORDS) or "TEMPORARY" in head


def data_type(type_code: int, flags: int) -> str:
    """Spin's convert_data_type: a db-data-type case name."""
    if type_code == DOUBLE:
        return "floating64"
    if type_code == FLOAT:
        return "floating32"
    if type_code in _INTEGERS:
        signed, unsigned = _INTEGERS[type_code]
        return unsigned if flags & FLAG.UNSIGNED else signed
    binary = bool(flags & FLAG.BINARY)
    if type_code in (BLOB, STRING, VAR_STRING):
        return "binary" if binary else "str"
    return "other"


_RANGES = {
    "int8": (-(2**7), 2**7), "int16": (-(2**15), 2**15), "int32": (-(2**31), 2**31), "int64": (-(2**63), 2**63),
    "uint8": (0, 2**8), "uint16": (0, 2**16), "uint32": (0, 2**32), "uint64": (0, 2**64),
}


def converter(column: Column) -> Callable[[Any], Value]:
    """`to_value` for one column, with its checks chosen once rather than once per value: text
    columns (mysqlclient hands their values over decoded) are the common case."""
    tag = column.data_type
    if tag == "str":
        return lambda raw: Value("str", raw) if type(raw) is str else to_value(column, raw)
    if tag in _RANGES:
        low, high = _RANGES[tag]

        def integer(raw: Any) -> Value:
            if raw is not None:
                try:
                    number = int(raw)
                except ValueError:
                    number = None
                if number is not None and low <= number < high:
                    return Value(tag, number)
            return to_value(column, raw)  # (NULL, or the value's error)

        return integer
    return functools.partial(to_value, column)


def to_value(column: Column, raw: Any) -> Value:
    if raw is None:
        return NULL
    tag = column.data_type
    try:
        if tag in _RANGES:
            number = int(raw)
            low, high = _RANGES[tag]
            if not low <= number < high:
                raise ValueError(f"{number} out of range for {tag}")
            return Value(tag, number)
        if tag in ("floating32", "floating64"):
            return Value(tag, float(raw))
        if tag == "str":
            return Value(tag, raw if isinstance(raw, str) else bytes(raw).decode("utf-8"))
        if tag == "binary":
            return Value(tag, raw.encode("utf-8") if isinstance(raw, str) else bytes(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DbError(ErrorKind.VALUE_CONVERSION_FAILED, f"Couldn't convert the value {raw!r}: {exc}") from None
    raise DbError(
        ErrorKind.VALUE_CONVERSION_FAILED,
        f"Cannot convert value {raw!r} in column {column.name} data type Other",
    )


class MysqlDriver:
    name = "mysql"

    def __init__(self, read_timeout_s: float) -> None:
        # A backstop only: each statement is bounded by its request's deadline (watchdog).
        self.read_timeout_s = max(1, math.ceil(read_timeout_s))

    def connect(self, key: Hashable, timeout_s: float, blocked: BlockedNetworks) -> Conn:
        assert isinstance(key, Address)
        options: dict[str, Any] = {}
        if key.database:
            options["database"] = key.database
        if key.tls:
            options["ssl_mode"] = "REQUIRED"
        return MySQLdb.connect(
            # (TLS here is ssl-mode REQUIRED, which verifies no name: an address is as good.)
            host=checked_host(key.host, key.port, False, blocked), port=key.port, user=key.user, password=key.password,
            connect_timeout=max(1, math.ceil(timeout_s)), read_timeout=self.read_timeout_s,
            write_timeout=self.read_timeout_s, charset="utf8mb4", autocommit=True,
            conv={},  # raw values: conversion follows Spin's column mapping, below
            **options,
        )

    def fileno(self, conn: Conn) -> int:
        return int(conn.fileno())

    def close(self, conn: Conn) -> None:
        conn.close()

    def reset(self, conn: Conn, lease: Lease[Conn]) -> bool:
        if not lease.dirty:
            return True
        if time.monotonic() >= lease.deadline:
            return False
        key = lease.item.key
        assert isinstance(key, Address)
        # COM_CHANGE_USER ends transactions, drops temporary tables and resets session variables.
        with lease.guard():
            conn.change_user(key.user, key.password, key.database)
            conn.set_character_set("utf8mb4")
            conn.autocommit(True)
        return True


def literal(conn: Conn, value: Value) -> bytes:
    tag, v = value
    if tag == "db-null":
        return b"NULL"
    if tag == "boolean":
        return b"1" if v else b"0"
    if tag in ("floating32", "floating64"):
        if not math.isfinite(v):
            raise DbError(ErrorKind.BAD_PARAMETER, f"MySQL cannot store {v}")
        return repr(float(v)).encode()
    if isinstance(v, int):
        return str(v).encode()
    if tag == "str":
        return b"'" + conn.escape_string(str(v).encode("utf-8")) + b"'"
    if tag == "binary":
        return b"X'" + bytes(v).hex().encode() + b"'"
    raise DbError(ErrorKind.BAD_PARAMETER, f"unsupported parameter type {tag}")


def _run(lease: Lease[Conn], statement: str, params: list[Value]) -> Any:
    conn = lease.conn
    if changes_session(statement):
        lease.dirty = True
    try:
        sql = bind(statement, [literal(conn, p) for p in params])
    except ParameterCountError as exc:
        raise DbError(ErrorKind.QUERY_FAILED, str(exc)) from None
    try:
        with lease.guard() as guard:
            conn.query(sql)
            result = conn.store_result()
    except MySQLdb.Error as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        if guard.fired or code in _CONNECTION_ERRORS:
            lease.broken = True
        if guard.fired:
            raise DbError(ErrorKind.QUERY_FAILED, "MySQL did not answer before the request's deadline") from None
        raise DbError(ErrorKind.QUERY_FAILED, f"{message} (error {code})") from None
    return result


def execute(lease: Lease[Conn], statement: str, params: list[Value]) -> None:
    _run(lease, statement, params)


def query(lease: Lease[Conn], statement: str, params: list[Value]) -> RowSet:
    result = _run(lease, statement, params)
    if result is None:
        return RowSet([], [])
    description = result.describe()
    flags = result.field_flags()
    columns = [Column(d[0], data_type(d[1], f)) for d, f in zip(description, flags, strict=True)]
    rows: list[list[Value]] = []
    total = 0
    converters = [converter(c) for c in columns]
    for raw in result.fetch_row(maxrows=0):
        row = [convert(v) for convert, v in zip(converters, raw, strict=True)]
        for v in row:
            total += value_size(v)
        check_budget(total)
        rows.append(row)
    return RowSet(columns, rows)
