"""The rdbms values and errors shared by the PostgreSQL and MySQL bindings, as host-side data,
and their WIT forms for each interface version.

Host code works with `Value(tag, payload)` pairs named by the newest interface's cases
(`"int32"`, `"str"`, `"db-null"`, `"range-int32"`, ...) and raises `DbError`; the functions here
lower them into each version's types: `fermyon:spin/rdbms-types@2.0.0` and its unversioned
predecessor, `spin:postgres/postgres@3.0.0` and `@4.0.0`. A case an older version lacks becomes
that version's `unsupported`, as Spin's own conversions do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from wasmtime.component import Record

from runtime.capabilities.support.wit import case, err, ok, record
from runtime.engine.patches import Case

# Spin's MAX_HOST_BUFFERED_BYTES: a query result larger than this is refused.
MAX_RESULT_BYTES = 128 << 20


class Value(NamedTuple):
    tag: str
    payload: Any = None


NULL = Value("db-null")


class ErrorKind(enum.Enum):
    CONNECTION_FAILED = "connection-failed"
    BAD_PARAMETER = "bad-parameter"
    QUERY_FAILED = "query-failed"
    VALUE_CONVERSION_FAILED = "value-conversion-failed"
    OTHER = "other"


@dataclass(frozen=True)
class ServerError:
    """The structured PostgreSQL error of `spin:postgres@4.0.0`'s `db-error`."""

    severity: str
    code: str
    message: str
    detail: str | None = None
    extras: list[tuple[str, str]] = field(default_factory=list)


class DbError(Exception):
    def __init__(self, kind: ErrorKind, message: str, server: ServerError | None = None) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.server = server


@dataclass
class Column:
    name: str
    data_type: str  # a v4 db-data-type case name; "other" carries `type_name`
    type_name: str = ""


@dataclass
class RowSet:
    columns: list[Column]
    rows: list[list[Value]]


def param(value: Any) -> Value:
    """A parameter-value as wasmtime-py hands it over (a tagged Variant) -> Value."""
    return Value(value.tag, value.payload)


def value_size(value: Value) -> int:
    """What a value costs in the result budget (as Spin counts: payload bytes plus a fixed part)."""
    payload = value.payload
    if isinstance(payload, str | bytes):
        return 32 + len(payload)
    if isinstance(payload, list):
        return 32 + sum(8 + (len(p) if isinstance(p, str) else 8) for p in payload if p is not None)
    return 32


def check_budget(total: int) -> None:
    if total > MAX_RESULT_BYTES:
        raise DbError(ErrorKind.QUERY_FAILED, f"query result exceeds limit of {MAX_RESULT_BYTES} bytes")


# -- versions ------------------------------------------------------------------------------------

# Cases each version's db-value has (beyond db-null and unsupported).
V2_CASES = frozenset(
    {"boolean", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "floating32", "floating64", "str", "binary"}
)
PG3_CASES = frozenset(
    {"boolean", "int8", "int16", "int32", "int64", "floating32", "floating64", "str", "binary",
     "date", "time", "datetime", "timestamp"}
)
PG4_CASES = PG3_CASES | {
    "uuid", "jsonb", "decimal", "range-int32", "range-int64", "range-decimal", "array-int32",
    "array-int64", "array-decimal", "array-str", "interval",
}


class Version(enum.Enum):
    V1 = "v1"  # unversioned fermyon:spin rdbms-types
    V2 = "v2"  # fermyon:spin/rdbms-types@2.0.0 (postgres and mysql)
    PG3 = "pg3"  # spin:postgres/postgres@3.0.0
    PG4 = "pg4"  # spin:postgres/postgres@4.0.0

    @property
    def cases(self) -> frozenset[str]:
        return _CASES[self]


_CASES = {Version.V1: V2_CASES, Version.V2: V2_CASES, Version.PG3: PG3_CASES, Version.PG4: PG4_CASES}
# Tags whose payload crosses as it is (every one but interval, db-null and unsupported).
_AS_IS = {v: frozenset(c - {"interval"}) for v, c in _CASES.items()}


def lower_value(value: Value, version: Version) -> Any:
    tag = value.tag
    if tag in _AS_IS[version]:  # (the common case first: a row has many values)
        return Case(tag, value.payload)
    if tag == "db-null":
        return Case("db-null")
    if tag == "unsupported":
        # v4's unsupported carries the value's raw bytes; older versions' carries nothing.
        return Case("unsupported", value.payload if version is Version.PG4 else None)
    if tag not in version.cases:
        return Case("unsupported", b"" if version is Version.PG4 else None)
    payload = value.payload  # interval
    return Case(tag, record(micros=payload[0], days=payload[1], months=payload[2]))


def lower_data_type(column: Column, version: Version) -> Any:
    tag = column.data_type
    if version is Version.PG4:
        return Case("other", column.type_name) if tag == "other" else Case(tag)
    return tag if tag in version.cases else "other"  # an enum before v4


def _column(name: str, data_type: Any) -> Record:
    rec = Record()
    rec.__dict__.update({"name": name, "data-type": data_type})  # (record(), without its renaming)
    return rec


def lower_row_set(rows: RowSet, version: Version) -> Any:
    columns = [_column(c.name, lower_data_type(c, version)) for c in rows.columns]
    return record(columns=columns, rows=[[lower_value(v, version) for v in row] for row in rows.rows])


def lower_error(exc: DbError, version: Version) -> Any:
    """The interface's error value (v1's names differ: `other-error`)."""
    if version is Version.PG4 and exc.kind is ErrorKind.QUERY_FAILED:
        if exc.server is None:
            return case("query-failed", Case("text", exc.message))
        s = exc.server
        db_error = record(
            as_text=exc.message, severity=s.severity, code=s.code, message=s.message, detail=s.detail,
            extras=list(s.extras),
        )
        return case("query-failed", Case("db-error", db_error))
    if version is Version.V1 and exc.kind is ErrorKind.OTHER:
        return case("other-error", exc.message)
    return case(exc.kind.value, exc.message)


def result(fn: Any, version: Version) -> Any:
    """ok(fn()) or the interface's err(...) for a DbError."""
    try:
        return ok(fn())
    except DbError as exc:
        return err(lower_error(exc, version))
