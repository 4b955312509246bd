"""What every outbound database binding does per request: check the guest's address against the
component's allow-list, and hold the connections it opened in the request's resource table,
returning them to the pool when the guest drops them or, at the latest, when the request ends."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.outbound_db.pool import ConnectFailed, Driver, Lease, PoolExhausted, pool_for
from runtime.capabilities.outbound_db.rdbms import DbError, ErrorKind, Value, Version, lower_row_set, result
from runtime.capabilities.outbound_db.watchdog import ConnectTimeout
from runtime.capabilities.outbound_http.host import allowed_hosts_for
from runtime.capabilities.support import per_app
from runtime.capabilities.support.allowed_hosts import AllowedHosts
from runtime.core import context
from runtime.core.contract import BaseCapability
from runtime.core.values import rep
from runtime.errors import GuestTrap
from runtime.types import AppSettings

T = TypeVar("T")
C = TypeVar("C")
L = TypeVar("L", bound="Releasable")


_USERINFO = re.compile(r"(?<=://)[^@/]*@")


def note_failed_open(family: str, address: str, why: str) -> None:
    """One INFO line under the app's logger for a connection that was refused or failed, as for
    outbound HTTP: the guest may swallow the error. Credentials in the address are left out."""
    context.current().log.info("%s connection to %s failed: %s", family, _USERINFO.sub("", address), why)


@dataclass(frozen=True)
class PreparedDb:
    allowed: AllowedHosts


def prepare(app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> PreparedDb:
    """The component's parsed allow-list (Spin's `allowed_outbound_hosts`); a load error if invalid."""
    return PreparedDb(allowed_hosts_for(app, component, settings))


@functools.lru_cache(maxsize=4096)
def allows(hosts: AllowedHosts, address: str, scheme: str) -> bool:
    """`hosts.allows_url(address, scheme)`, remembered: a guest opens the same few addresses on
    every request, and parsing one costs more than the rest of a pooled `open`."""
    return hosts.allows_url(address, scheme)


def allowed(capability: str) -> AllowedHosts:
    ctx = context.current()
    prepared = ctx.prepared.get(capability)
    if not isinstance(prepared, PreparedDb):
        prepared = per_app.per_app(
            ctx.app,
            f"{capability}:{ctx.component.id}:{per_app.settings_key(ctx.settings)}",
            lambda: prepare(ctx.app, ctx.component, ctx.settings),
        )
    return prepared.allowed


class Releasable(Protocol):
    """A per-request handle that gives something back when dropped or when the request ends
    (release is idempotent)."""

    def release(self) -> None: ...


def hold(handle: Releasable) -> int:
    """Put `handle` in the request's table (its rep) and release it at the request's end."""
    ctx = context.current()
    ctx.cleanups.append(handle.release)
    return ctx.table.push(handle)


def get(store: Any, res: Any, kind: type[T]) -> T:
    return context.current().table.get(rep(store, res), kind)


def drop(rep_: int) -> None:
    handle = context.current().table.discard(rep_)
    if handle is not None:
        handle.release()


def remaining() -> float:
    return context.current().remaining()


def deadline() -> float:
    return context.current().deadline


__all__ = ["GuestTrap", "PreparedDb", "Releasable", "allowed", "drop", "get", "hold", "prepare"]


class OutboundDbCapability(BaseCapability):
    """What the database families share: their calls wait on the network (components importing
    them run on worker threads), and each component is prepared with its allow-list."""

    blocking = True

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        return prepare(app, component, settings)


def with_lease(open_: Callable[[str], L], address: str, use: Callable[[L], T]) -> T:
    """Spin 1.x calls name the address on every call: open (or take from the pool), use, release."""
    lease = open_(address)
    try:
        return use(lease)
    finally:
        lease.release()


def open_rdbms(family: str, capability: str, address: str, parse: Callable[[str, AllowedHosts], Hashable],
               driver: Driver[C], limit: int) -> Lease[C]:
    """A pooled connection for a relational database's `open(address)`: the address checked
    against the allow-list first, every refusal or failure logged once and raised as DbError."""
    ctx = context.current()
    try:
        key = parse(address, allowed(capability))
    except DbError as exc:
        note_failed_open(family, address, exc.message)
        raise
    try:
        return pool_for(ctx.app, driver, limit).acquire(key, ctx.deadline)
    except PoolExhausted:
        note_failed_open(family, address, "too many connections")
        raise DbError(ErrorKind.CONNECTION_FAILED, "too many connections") from None
    except (ConnectTimeout, ConnectFailed) as exc:
        note_failed_open(family, address, str(exc))
        raise DbError(ErrorKind.CONNECTION_FAILED, str(exc)) from None


def spin1_rdbms_funcs(open_: Callable[[str], Lease[Any]], params: Callable[[list[Any]], list[Value]],
                      client: Callable[[], Any], executed: Callable[[Any], Any]) -> dict[str, Any]:
    """Spin 1.x `query` / `execute` (outbound-pg, outbound-mysql): the address comes with every
    call, so each call opens (or takes from the pool), runs, lowers and releases."""

    def with_address(op: Callable[[Lease[Any], str, list[Value]], Any], lower: Callable[[Any], Any]) -> Any:
        def call(store: Any, address: str, statement: str, raw: list[Any]) -> Any:
            def run() -> Any:
                converted = params(raw)  # (before opening: a bad parameter costs no connection)
                return with_lease(open_, address, lambda lease: lower(op(lease, statement, converted)))

            return result(run, Version.V1)

        return call

    return {
        "query": with_address(lambda *a: client().query(*a), lambda rows: lower_row_set(rows, Version.V1)),
        "execute": with_address(lambda *a: client().execute(*a), executed),
    }
