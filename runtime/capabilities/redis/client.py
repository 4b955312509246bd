"""Redis through redis-py: address parsing, the pool driver and the commands, with results in
Spin's terms.

One redis-py `Connection` per pooled connection, used command by command (`send_command`,
`read_response`) without redis-py's client layer, which would retry and reinterpret replies.
Spin's `execute` distinguishes a status reply (`+OK`) from a bulk string; redis-py returns both
as bytes, so the connections use a RESP2 parser that marks status replies (`Status`).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis._parsers.resp2 import _RESP2Parser
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection, Connection, SSLConnection, parse_url
from redis.retry import Retry

from runtime.capabilities.outbound_db.pool import Lease
from runtime.capabilities.support.blocked_networks import BlockedNetworks, checked_host

MAX_RESULT_BYTES = 128 << 20  # Spin's MAX_HOST_BUFFERED_BYTES


class RedisError(Exception):
    """A failure the guest sees as `error.other(message)` (or `type-error` for `kind`)."""

    def __init__(self, message: str, type_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.type_error = type_error


class InvalidAddress(Exception):
    pass


class Status(str):
    """A simple-string (status) reply, as opposed to a bulk string."""


class _StatusParser(_RESP2Parser):
    """RESP2 parsing unchanged, except that a status reply comes back as `Status`: the line is
    peeked and, when it is not a status, rewound for the stock parser."""

    def _read_response(self, disable_decoding: bool = False, timeout: Any = None) -> Any:
        buffer = self._buffer
        assert buffer is not None
        pos = buffer.get_pos()
        raw = buffer.readline() if timeout is None else buffer.readline(timeout=timeout)
        if raw[:1] == b"+":
            return Status(raw[1:].decode("utf-8", errors="replace"))
        buffer.rewind(pos)
        if timeout is None:
            return super()._read_response(disable_decoding=disable_decoding)
        return super()._read_response(disable_decoding=disable_decoding, timeout=timeout)


@dataclass(frozen=True)
class Address:
    """A parsed `redis://[user[:password]@]host[:port][/db]` (or `rediss://`): the pool key."""

    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool

    def __repr__(self) -> str:  # never show the password
        return f"Address({self.host}:{self.port}/{self.db}, tls={self.tls})"


@functools.lru_cache(maxsize=1024)
def parse_address(address: str) -> Address:
    if not address.startswith(("redis://", "rediss://")):
        raise InvalidAddress(address)
    try:
        parts = parse_url(address)
    except (ValueError, TypeError) as exc:
        raise InvalidAddress(str(exc)) from None
    host = parts.get("host")
    if not host:
        raise InvalidAddress(address)
    return Address(
        host=str(host),
        port=int(parts.get("port") or 6379),
        db=int(parts.get("db") or 0),
        username=parts.get("username"),
        password=parts.get("password"),
        tls=parts.get("connection_class") is SSLConnection,
    )


# No CLIENT SETINFO round trips on connect (redis-py 8 spells it driver_info=None, older ones lib_name).
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(AbstractConnection.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


class RedisDriver:
    name = "redis"

    def __init__(self, socket_timeout_s: float) -> None:
        # A backstop only: each command is bounded by its request's deadline (watchdog).
        self.socket_timeout_s = socket_timeout_s

    def connect(self, key: Hashable, timeout_s: float, blocked: BlockedNetworks) -> Connection:
        assert isinstance(key, Address)
        cls = SSLConnection if key.tls else Connection
        conn = cls(
            **_NO_SETINFO,
            host=checked_host(key.host, key.port, key.tls, blocked),
            port=key.port,
            db=key.db,
            username=key.username,
            password=key.password,
            socket_connect_timeout=timeout_s,
            socket_timeout=max(timeout_s, self.socket_timeout_s),
            retry=Retry(NoBackoff(), 0),  # the pool decides what a failure means, not redis-py
            parser_class=_StatusParser,
            protocol=2,
        )
        conn.connect()
        return conn

    def fileno(self, conn: Connection) -> int:
        sock = conn._sock  # redis-py keeps its socket here; the watchdog needs its descriptor
        assert sock is not None
        return int(sock.fileno())

    def close(self, conn: Connection) -> None:
        conn.disconnect()

    def reset(self, conn: Connection, lease: Lease[Connection]) -> bool:
        # A connection left in a MULTI or a SUBSCRIBE would surprise the next request.
        return not lease.dirty


_DIRTY_COMMANDS = frozenset({"MULTI", "WATCH", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SELECT", "CLIENT", "RESET", "HELLO", "AUTH"})


def command(lease: Lease[Connection], *args: Any) -> Any:
    """Run one command on the lease's connection within its deadline; the raw reply."""
    if str(args[0]).upper() in _DIRTY_COMMANDS:
        lease.dirty = True
    conn = lease.conn
    try:
        with lease.guard() as guard:
            conn.send_command(*args)
            reply = conn.read_response()
    except redis.exceptions.ResponseError as exc:
        raise RedisError(str(exc)) from None
    except (redis.exceptions.RedisError, OSError) as exc:
        lease.broken = True
        if guard.fired or time.monotonic() >= lease.deadline:
            raise RedisError("Redis did not answer before the request's deadline") from None
        raise RedisError(str(exc) or type(exc).__name__) from None
    return reply


def get(lease: Lease[Connection], key: str) -> bytes | None:
    value = command(lease, "GET", key)
    if value is not None and len(value) > MAX_RESULT_BYTES:
        raise RedisError(f"query result exceeds limit of {MAX_RESULT_BYTES} bytes")
    return _bytes(value) if value is not None else None


def integer(reply: Any) -> int:
    if isinstance(reply, int):
        return reply
    raise RedisError(f"Response type not convertible to integer: {reply!r}", type_error=True)


def strings(reply: Any) -> list[str]:
    if not isinstance(reply, list):
        raise RedisError(f"Response type not convertible to a list of strings: {reply!r}", type_error=True)
    try:
        return [str(v) if isinstance(v, Status) else bytes(v).decode("utf-8") for v in reply]
    except (UnicodeDecodeError, TypeError) as exc:
        raise RedisError(f"Response was of incompatible type - {exc}", type_error=True) from None


def flatten(reply: Any) -> list[tuple[str, Any]]:
    """A reply as Spin's `list<redis-result>`: arrays flattened, each leaf (tag, payload)."""
    out: list[tuple[str, Any]] = []
    size = 0

    def add(value: Any) -> None:
        nonlocal size
        if isinstance(value, list):
            for item in value:
                add(item)
            return
        if isinstance(value, redis.exceptions.ResponseError):
            raise RedisError(str(value))
        if value is None:
            out.append(("nil", None))
        elif isinstance(value, Status):
            out.append(("status", str(value)))
            size += len(value)
        elif isinstance(value, int):
            out.append(("int64", value))
        else:
            data = _bytes(value)
            out.append(("binary", data))
            size += len(data)
        size += 32
        if size > MAX_RESULT_BYTES:
            raise RedisError(f"query result exceeds limit of {MAX_RESULT_BYTES} bytes")

    add(reply)
    return out


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def args_of(parameters: Sequence[Any]) -> list[Any]:
    """`redis-parameter`s (bare int or bytes in wasmtime-py) as command arguments."""
    return [p if isinstance(p, int) else bytes(p) for p in parameters]
