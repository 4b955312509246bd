"""Guest bindings for outbound Redis: `fermyon:spin/redis@2.0.0` (a `connection` resource) and
the unversioned Spin 1.x `fermyon:spin/redis` (every call names its address).

As Spin's `factor-outbound-redis`: `open` checks the address against the component's
`allowed_outbound_hosts` (scheme `redis`, default port 6379) before anything touches the network
and answers `invalid-address` for a denied or malformed one; the connection is established at
`open` (errors: `other` with the client's message); `sadd` reports `type-error` for a reply that
is not a count; everything else fails as `other` with the server's message. The Spin 1.x calls
open, run and release a connection each, and fail with the enum `error`.

Connections come from the app's pool (outbound_db/pool.py): `too-many-connections` when all of
the app's connections stay busy until the request's deadline.

`spin:redis/redis@3.0.0` is not served: its functions are component-model `async`, which this
runtime (wasmtime-py 50) cannot define; a component importing it is refused at load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtime.capabilities.outbound_db import guest
from runtime.capabilities.outbound_db.pool import (
    ConnectFailed,
    ConnectionPool,
    Lease,
    PoolExhausted,
    max_connections,
    pool_for,
)
from runtime.capabilities.outbound_db.watchdog import ConnectTimeout
from runtime.capabilities.support.wit import case, err, ok
from runtime.core import context
from runtime.core.contract import InterfaceImpl, resource_type_id
from runtime.core.values import own
from runtime.engine.patches import Case

if TYPE_CHECKING:
    from redis.connection import Connection

NAME = "spin-outbound-redis"
V2_CONNECTION = resource_type_id("fermyon:spin/redis", "connection")


class _Failure(Exception):
    """An error value for the v2 interface: (case, message or None)."""

    def __init__(self, tag: str, message: str | None = None) -> None:
        super().__init__(tag if message is None else f"{tag}: {message}")
        self.tag = tag
        self.message = message

    def value(self) -> Any:
        return case(self.tag, self.message)


def _pool() -> ConnectionPool[Connection]:
    from runtime.capabilities.redis.client import RedisDriver  # redis-py loads at the first open

    ctx = context.current()
    return pool_for(ctx.app, RedisDriver(ctx.settings.timeout_s), max_connections("outbound_redis"))


def _open(address: str) -> Lease[Connection]:
    from runtime.capabilities.redis.client import InvalidAddress, parse_address

    ctx = context.current()
    if not guest.allows(guest.allowed(NAME), address, "redis"):
        guest.note_failed_open("redis", address, "not allowed by allowed_outbound_hosts")
        raise _Failure("invalid-address")
    try:
        parsed = parse_address(address)
    except InvalidAddress:
        raise _Failure("invalid-address") from None
    try:
        return _pool().acquire(parsed, ctx.deadline)
    except PoolExhausted:
        guest.note_failed_open("redis", address, "too many connections")
        raise _Failure("too-many-connections") from None
    except (ConnectTimeout, ConnectFailed) as exc:
        guest.note_failed_open("redis", address, str(exc))
        raise _Failure("other", str(exc)) from None


def _call(fn: Callable[[], Any], on_error: Callable[[Any], Any]) -> Any:
    try:
        return ok(fn())
    except _client().RedisError as exc:
        return on_error(case("type-error") if exc.type_error else case("other", exc.message))
    except _Failure as exc:
        return on_error(exc.value())


# -- operations, shared by both versions -------------------------------------------------------


def _client() -> Any:
    from runtime.capabilities.redis import client  # redis-py loads at the first call, not at link time

    return client


def _publish(lease: Lease[Connection], channel: str, payload: bytes) -> None:
    _client().command(lease, "PUBLISH", channel, bytes(payload))


def _get(lease: Lease[Connection], key: str) -> bytes | None:
    return _client().get(lease, key)


def _set(lease: Lease[Connection], key: str, value: bytes) -> None:
    _client().command(lease, "SET", key, bytes(value))


def _incr(lease: Lease[Connection], key: str) -> int:
    c = _client()
    return c.integer(c.command(lease, "INCRBY", key, 1))


def _del(lease: Lease[Connection], keys: list[str]) -> int:
    c = _client()
    return c.integer(c.command(lease, "DEL", *keys))


def _sadd(lease: Lease[Connection], key: str, values: list[str]) -> int:
    c = _client()
    return c.integer(c.command(lease, "SADD", key, *values))


def _smembers(lease: Lease[Connection], key: str) -> list[str]:
    c = _client()
    return c.strings(c.command(lease, "SMEMBERS", key))


def _srem(lease: Lease[Connection], key: str, values: list[str]) -> int:
    c = _client()
    return c.integer(c.command(lease, "SREM", key, *values))


def _execute(lease: Lease[Connection], command: str, arguments: list[Any]) -> list[Any]:
    c = _client()
    reply = c.command(lease, command, *c.args_of(arguments))
    return [Case(tag, payload) for tag, payload in c.flatten(reply)]


_OPS: dict[str, Callable[..., Any]] = {
    "publish": _publish, "get": _get, "set": _set, "incr": _incr, "del": _del, "sadd": _sadd,
    "smembers": _smembers, "srem": _srem, "execute": _execute,
}


# -- fermyon:spin/redis@2.0.0 --------------------------------------------------------------------


def _v2_funcs() -> dict[str, Any]:
    def open_(store: Any, address: str) -> Any:
        try:
            lease = _open(address)
        except _Failure as exc:
            return err(exc.value())
        return ok(own(guest.hold(lease), V2_CONNECTION))

    def method(op: Callable[..., Any]) -> Any:
        def call(store: Any, handle: Any, *args: Any) -> Any:
            lease = guest.get(store, handle, Lease)
            return _call(lambda: op(lease, *args), err)

        return call

    funcs: dict[str, Any] = {"[static]connection.open": open_}
    for name, op in _OPS.items():
        funcs[f"[method]connection.{name}"] = method(op)
    return funcs


# -- fermyon:spin/redis (unversioned, Spin 1.x) --------------------------------------------------


def _v1_funcs() -> dict[str, Any]:
    def with_address(op: Callable[..., Any], convert: Callable[[Any], Any]) -> Any:
        def call(store: Any, address: str, *args: Any) -> Any:
            try:
                lease = _open(address)
            except _Failure:
                return err("error")
            try:
                return _call(lambda: convert(op(lease, *args)), lambda _value: err("error"))
            finally:
                lease.release()

        return call

    same = lambda value: value  # noqa: E731
    converts: dict[str, Callable[[Any], Any]] = {"get": lambda value: value or b""}
    return {name: with_address(op, converts.get(name, same)) for name, op in _OPS.items()}


class RedisCapability(guest.OutboundDbCapability):
    name = NAME
    interfaces = frozenset({"fermyon:spin/redis"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if version is None:
            return InterfaceImpl(funcs=_v1_funcs())
        return InterfaceImpl(resources={"connection": (V2_CONNECTION, guest.drop)}, funcs=_v2_funcs())

