"""PostgreSQL values between the WIT cases and psycopg, as Spin's `factor-outbound-pg` converts
them (`types.rs`, `types/convert.rs`).

Results are read in binary format. A column whose type Spin maps is converted from psycopg's
Python value; any other type arrives as its raw binary form (`RAW`), which is exactly v4's
`unsupported(list<u8>)`. Parameters are sent typed (`int2`, `int4`, `int8`, `float4`, ...); the
server applies its usual assignment casts where tokio-postgres would refuse some combinations
client-side (docs/reference/outbound-databases.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.postgres import types as pg_types
from psycopg.pq import Format
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Float4, Float8, Int2, Int4, Int8
from psycopg.types.range import Int4Range, Int8Range, NumericRange, Range

from runtime.capabilities.outbound_db.rdbms import NULL, Value

# OID -> v4 db-data-type case (Spin's convert_data_type).
DATA_TYPES: dict[int, str] = {
    16: "boolean", 17: "binary", 700: "floating32", 701: "floating64", 21: "int16", 23: "int32",
    20: "int64", 25: "str", 1043: "str", 1042: "str", 1114: "datetime", 1184: "datetime",
    1082: "date", 1083: "time", 2950: "uuid", 3802: "jsonb", 1700: "decimal", 3904: "range-int32",
    3926: "range-int64", 3906: "range-decimal", 1007: "array-int32", 1016: "array-int64",
    1231: "array-decimal", 1009: "array-str", 1015: "array-str", 1014: "array-str", 1186: "interval",
}
INTERVAL_OID = 1186
_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)


class ConversionError(ValueError):
    pass


# -- psycopg adapters --------------------------------------------------------------------------


class RawBinaryLoader(Loader):
    """Any type Spin does not map: its binary wire form, untouched."""

    format = Format.BINARY

    def load(self, data: Any) -> bytes:
        return bytes(data)


class IntervalBinaryLoader(Loader):
    """interval as (micros, days, months): psycopg's timedelta would fold months into days."""

    format = Format.BINARY

    def load(self, data: Any) -> tuple[int, int, int]:
        micros, days, months = struct.unpack("!qii", bytes(data))
        return int(micros), int(days), int(months)


class PgInterval(tuple[int, int, int]):
    """A WIT interval (micros, days, months) to send as a PostgreSQL interval."""


class IntervalBinaryDumper(Dumper):
    format = Format.BINARY
    oid = INTERVAL_OID

    def dump(self, obj: Any) -> bytes:
        micros, days, months = obj
        return struct.pack("!qii", micros, days, months)


def adapters() -> AdaptersMap:
    """psycopg's adapters, with raw loaders for every type Spin does not map."""
    amap = AdaptersMap(psycopg.adapters)
    for info in pg_types:
        for oid in (info.oid, info.array_oid):
            if oid and oid not in DATA_TYPES:
                amap.register_loader(oid, RawBinaryLoader)
    amap.register_loader(INTERVAL_OID, IntervalBinaryLoader)
    amap.register_dumper(PgInterval, IntervalBinaryDumper)
    return amap


# -- results -----------------------------------------------------------------------------------


def type_name(oid: int, display: str) -> str:
    info = pg_types.get(oid)
    if info is None:
        return display
    return info.name if info.oid == oid else "_" + info.name


def _decimal_text(d: Decimal) -> str:
    return format(d, "f") if d.is_finite() else str(d)


def _bound(value: Any, inclusive: bool, convert: Any) -> tuple[Any, str] | None:
    if value is None:
        return None
    return convert(value), "inclusive" if inclusive else "exclusive"


def _range(r: Range[Any], convert: Any) -> tuple[Any, Any]:
    if r.isempty:
        return None, None
    return _bound(r.lower, r.lower_inc, convert), _bound(r.upper, r.upper_inc, convert)


def _flat(values: list[Any], convert: Any) -> list[Any]:
    if any(isinstance(v, list) for v in values):
        raise ConversionError("array contains too many dimensions")
    return [None if v is None else convert(v) for v in values]


def _datetime(value: dt.datetime) -> tuple[int, ...]:
    if value.tzinfo is not None:
        value = value.astimezone(_UTC)
    return (value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond * 1000)


_AS_LOADED = ("boolean", "int16", "int32", "int64", "floating32", "floating64", "str")


def converter(tag: str) -> Callable[[Any], Value]:
    """`to_value` for one column's `tag`, chosen once per column rather than once per value."""
    if tag in _AS_LOADED:
        return lambda value: NULL if value is None else Value(tag, value)
    return functools.partial(to_value, tag)


def to_value(tag: str, value: Any) -> Value:
    """A psycopg value of a column mapped to `tag` (or RAW bytes) -> Value."""
    if value is None:
        return NULL
    if tag in _AS_LOADED:
        return Value(tag, value)
    if tag == "binary":
        return Value(tag, bytes(value))
    if tag == "datetime":
        return Value(tag, _datetime(value))
    if tag == "date":
        return Value(tag, (value.year, value.month, value.day))
    if tag == "time":
        return Value(tag, (value.hour, value.minute, value.second, value.microsecond * 1000))
    if tag == "uuid":
        return Value(tag, str(value))
    if tag == "jsonb":
        return Value(tag, json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode())
    if tag == "decimal":
        return Value(tag, _decimal_text(value))
    if tag in ("range-int32", "range-int64"):
        return Value(tag, _range(value, int))
    if tag == "range-decimal":
        return Value(tag, _range(value, _decimal_text))
    if tag in ("array-int32", "array-int64"):
        return Value(tag, _flat(value, int))
    if tag == "array-decimal":
        return Value(tag, _flat(value, _decimal_text))
    if tag == "array-str":
        return Value(tag, _flat(value, str))
    if tag == "interval":
        return Value(tag, value)
    return Value("unsupported", bytes(value))


# -- parameters --------------------------------------------------------------------------------

_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


def _decimal(text: str) -> Decimal:
    if not _DECIMAL.match(text):
        raise ConversionError(f"invalid decimal {text}")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ConversionError(f"invalid decimal {text}") from None


def _date(v: tuple[int, int, int]) -> dt.date:
    try:
        return dt.date(*v)
    except (ValueError, OverflowError):
        raise ConversionError(f"invalid date y={v[0]}, m={v[1]}, d={v[2]}") from None


def _time(v: tuple[int, int, int, int]) -> dt.time:
    h, mi, s, ns = v
    try:
        return dt.time(h, mi, s, ns // 1000)
    except ValueError:
        raise ConversionError(f"invalid time {h}:{mi}:{s}:{ns}") from None


def _range_param(cls: type[Range[Any]], value: Any, convert: Any) -> Range[Any]:
    lower, upper = value
    bounds = ("[" if lower is not None and lower[1] == "inclusive" else "(") + (
        "]" if upper is not None and upper[1] == "inclusive" else ")"
    )
    return cls(
        None if lower is None else convert(lower[0]), None if upper is None else convert(upper[0]), bounds
    )


def to_param(value: Value) -> Any:
    """A v4 parameter-value -> what psycopg sends; ConversionError as Spin's conversions fail."""
    tag, v = value
    if tag == "db-null":
        return None
    if tag == "boolean":
        return bool(v)
    if tag in ("int8", "int16"):
        return Int2(v)  # PostgreSQL has no one-byte integer column type
    if tag == "int32":
        return Int4(v)
    if tag == "int64":
        return Int8(v)
    if tag == "floating32":
        return Float4(v)
    if tag == "floating64":
        return Float8(v)
    if tag == "str":
        return str(v)
    if tag == "binary":
        return bytes(v)
    if tag == "date":
        return _date(v)
    if tag == "time":
        return _time(v)
    if tag == "datetime":
        y, mo, d, h, mi, s, ns = v
        return dt.datetime.combine(_date((y, mo, d)), _time((h, mi, s, ns)))
    if tag == "timestamp":
        try:
            return _EPOCH + dt.timedelta(seconds=v)
        except OverflowError:
            raise ConversionError(f"invalid epoch timestamp {v}") from None
    if tag == "uuid":
        try:
            return uuid.UUID(v)
        except ValueError:
            raise ConversionError(f"invalid UUID {v}") from None
    if tag == "jsonb":
        try:
            return Jsonb(json.loads(bytes(v)))
        except ValueError:
            raise ConversionError(f"invalid JSON {bytes(v).decode('utf-8', 'replace')}") from None
    if tag == "decimal":
        return _decimal(v)
    if tag == "range-int32":
        return _range_param(Int4Range, v, int)
    if tag == "range-int64":
        return _range_param(Int8Range, v, int)
    if tag == "range-decimal":
        return _range_param(NumericRange, v, _decimal)
    if tag == "array-int32":
        return [None if x is None else Int4(x) for x in v]
    if tag == "array-int64":
        return [None if x is None else Int8(x) for x in v]
    if tag == "array-decimal":
        return [None if x is None else _decimal(x) for x in v]
    if tag == "array-str":
        return [None if x is None else str(x) for x in v]
    if tag == "interval":
        return PgInterval((v.micros, v.days, v.months))
    raise ConversionError(f"unsupported parameter type {tag}")


UNSIGNED = frozenset({"uint8", "uint16", "uint32", "uint64"})
