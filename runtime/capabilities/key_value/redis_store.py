"""Key-value stores backed by Redis (runtime config `[key_value_store.NAME] type = "redis"`).

Spin's `key-value-redis` stores keys as they are and lists them with `KEYS *`, so tenants of one
Redis see (and overwrite) each other's keys. Here every key gets a prefix, by default
`lepton:{app}:{store}:` (app: its routes.toml name), and `get-keys` is a SCAN MATCH within it:
two apps, or two stores of one app, on one Redis never see each other's data. `key_prefix = ""`
in the runtime config gives Spin's layout, for data shared with Spin deployments.

Values and counters follow Spin's Redis store (`increment` is INCRBY: a decimal string), not the
SQLite store's 8-byte little-endian integers.

Connections come from the app's key-value Redis pool (outbound_db/pool.py: apart from the pool for
the guest's own Redis addresses, not subject to block_networks, capped by `[outbound_redis]
max_connections`): each call borrows one, waits without the app's CPU turn and within the
request's deadline, and gives it back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from runtime.capabilities.key_value.store import KvError, KvErrorKind, Store
from runtime.capabilities.outbound_db.pool import (
    ConnectFailed,
    Lease,
    PoolExhausted,
    max_connections,
    pool_for,
)
from runtime.capabilities.outbound_db.watchdog import ConnectTimeout
from runtime.core import context

if TYPE_CHECKING:
    from redis.connection import Connection

T = TypeVar("T")
_SCAN_COUNT = 1000  # keys per SCAN round trip: few round trips, none of them long


def default_prefix(app: str, store: str) -> str:
    return f"lepton:{app}:{store}:"


def _glob_escape(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern (a prefix may hold *, ?, [ or \\)."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisStore(Store):
    """An open Redis-backed store: the same methods as the SQLite `Store`."""

    def __init__(self, label: str, url: str, prefix: str) -> None:
        from runtime.capabilities.redis.client import InvalidAddress, parse_address

        self.label = label
        self.prefix = prefix
        try:
            self._address = parse_address(url)
        except InvalidAddress:
            raise KvError(KvErrorKind.OTHER, f"store {label!r}: invalid Redis URL") from None

    def _run(self, fn: Callable[[Lease[Connection]], T]) -> T:
        from runtime.capabilities.redis.client import RedisDriver, RedisError

        ctx = context.current()
        pool = pool_for(ctx.app, RedisDriver(ctx.settings.timeout_s), max_connections("outbound_redis"),
                        operator_configured=True)
        try:
            lease = pool.acquire(self._address, ctx.deadline)
        except PoolExhausted:
            raise KvError(KvErrorKind.OTHER, "too many Redis connections") from None
        except (ConnectTimeout, ConnectFailed) as exc:
            raise KvError(KvErrorKind.OTHER, str(exc)) from None
        try:
            return fn(lease)
        except RedisError as exc:
            raise KvError(KvErrorKind.OTHER, exc.message) from None
        finally:
            lease.release()

    def _cmd(self, *args: Any) -> Any:
        from runtime.capabilities.redis.client import command

        return self._run(lambda lease: command(lease, *args))

    def _key(self, key: str) -> str:
        return self.prefix + key

    def get(self, key: str) -> bytes | None:
        from runtime.capabilities.redis.client import get

        return self._run(lambda lease: get(lease, self._key(key)))

    def set(self, key: str, value: bytes) -> None:
        self._cmd("SET", self._key(key), bytes(value))

    def delete(self, key: str) -> None:
        self._cmd("DEL", self._key(key))

    def exists(self, key: str) -> bool:
        return bool(self._cmd("EXISTS", self._key(key)))

    def get_keys(self) -> list[str]:
        pattern = _glob_escape(self.prefix) + "*"

        def scan(lease: Lease[Connection]) -> list[str]:
            from runtime.capabilities.redis.client import command

            keys: set[str] = set()  # SCAN may return a key more than once
            cursor: Any = b"0"
            while True:
                cursor, batch = command(lease, "SCAN", cursor, "MATCH", pattern, "COUNT", _SCAN_COUNT)
                for raw in batch:
                    keys.add(bytes(raw).decode("utf-8", errors="replace")[len(self.prefix):])
                if bytes(cursor) == b"0":
                    return sorted(keys)

        return self._run(scan)

    def get_many(self, keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        values = self._cmd("MGET", *(self._key(k) for k in wanted))
        return [(k, bytes(v)) for k, v in zip(wanted, values, strict=True) if v is not None]

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if items:
            self._cmd("MSET", *(part for k, v in items for part in (self._key(k), bytes(v))))

    def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            self._cmd("DEL", *(self._key(k) for k in keys))

    def increment(self, key: str, delta: int) -> int:
        reply = self._cmd("INCRBY", self._key(key), delta)
        if not isinstance(reply, int):
            raise KvError(KvErrorKind.OTHER, f"INCRBY answered {reply!r}")
        return reply

    def compare_and_swap(self, key: str, expected: bytes | None, value: bytes) -> bool:
        """WATCH/MULTI/EXEC: the write happens only if nobody changed the key since it was read
        (None: write unconditionally, as the SQLite store)."""
        full = self._key(key)
        if expected is None:
            self._cmd("SET", full, bytes(value))
            return True

        def cas(lease: Lease[Connection]) -> bool:
            from runtime.capabilities.redis.client import command

            command(lease, "WATCH", full)  # marks the lease dirty: the connection is not reused
            current = command(lease, "GET", full)
            if current is None or bytes(current) != bytes(expected):
                command(lease, "UNWATCH")
                return False
            command(lease, "MULTI")
            command(lease, "SET", full, bytes(value))
            return command(lease, "EXEC") is not None  # nil: the key changed after WATCH

        return self._run(cas)
