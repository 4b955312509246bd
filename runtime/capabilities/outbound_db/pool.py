"""Connection pools: one per app and interface family, idle connections kept per address.

A pool holds at most `limit` connections (idle, lent out or being opened) across all the
addresses an app uses, so one app cannot exhaust a database server or this process's sockets.
`acquire` hands out an idle connection for the address (checked alive without a round trip),
opens a new one while under the limit, closes an idle one of another address to make room, or
waits for a release; every wait ends at the request's deadline. A connection that failed, timed
out or cannot be reset is closed instead of returned. Idle connections are closed after
IDLE_TIMEOUT_S (by the watchdog thread) and all of them when the app is unloaded.

The family's `Driver` knows the client library: how to connect, how to tell a dead idle
connection, how to make a used one fit for the next request.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from runtime.capabilities.outbound_db.watchdog import WATCHDOG, ConnectTimeout, Guard, connect_within
from runtime.capabilities.support.blocked_networks import BlockedNetworks
from runtime.core import context

C = TypeVar("C")

# Spin's max_connections for an outbound database, per app and family: the app's runtime config
# sets it (`[outbound_pg] max_connections = 4`, docs/reference/runtime-config.md).
DEFAULT_MAX_CONNECTIONS = 10
IDLE_TIMEOUT_S = 60.0


class PoolExhausted(Exception):
    """All `limit` connections stayed in use until the deadline."""


class ConnectFailed(Exception):
    """The library could not connect; the message is its own (never includes the password)."""


class Driver(Protocol[C]):
    name: str

    def connect(self, key: Hashable, timeout_s: float, blocked: BlockedNetworks) -> C:
        """A new connection for `key`; raises on failure (connect timeouts from `timeout_s`).
        With a non-empty `blocked`, the driver resolves the host first and connects to an
        address `checked_addresses` kept (DestinationProhibited when none is left)."""
        ...

    def fileno(self, conn: C) -> int: ...

    def close(self, conn: C) -> None: ...

    def reset(self, conn: C, lease: Lease[C]) -> bool:
        """Make a used connection fit for another request (may talk to the server, guarded by
        the pool); False if it cannot be reused."""
        ...


@dataclass(eq=False)
class _Pooled(Generic[C]):
    conn: C
    key: Hashable
    sock: socket.socket | None  # a dup of the library's socket, for the watchdog and liveness
    idle_since: float = 0.0


def _dup_socket(fd: int) -> socket.socket | None:
    try:
        return socket.socket(fileno=os.dup(fd))
    except OSError:
        return None


def _idle_alive(sock: socket.socket | None) -> bool:
    """An idle connection must have nothing to read: readable means the server closed it (or
    sent something unasked, which no request expects either)."""
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


@dataclass(eq=False)
class Lease(Generic[C]):
    """A connection lent to one request; `release` (idempotent) gives it back."""

    pool: ConnectionPool[C]
    item: _Pooled[C]
    deadline: float
    broken: bool = False
    # Set by the family when a statement may have left session state behind (a transaction,
    # a SET, a temporary table): the driver's reset then clears it before reuse.
    dirty: bool = False
    released: bool = field(default=False, repr=False)

    @property
    def conn(self) -> C:
        return self.item.conn

    def guard(self, deadline: float | None = None) -> _LeaseGuard:
        """Guard one blocking call: the socket is shut down if it outlives the deadline."""
        return _LeaseGuard(self, self.deadline if deadline is None else deadline)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.pool._release(self)


class _LeaseGuard:
    # One object for the watchdog's guard and the request's wait, entered and left by hand:
    # this runs around every statement, and nested context managers cost a warm call's time.
    __slots__ = ("_ctx", "_lease", "guard")

    def __init__(self, lease: Lease[C], deadline: float) -> None:
        self._lease = lease
        self.guard = Guard(deadline, lease.item.sock)
        self._ctx: context.RequestContext | None = None

    def __enter__(self) -> Guard:
        # A database call is a wait on the network: the guest gives its app's CPU turn back.
        self._ctx = context.current_or_none()
        if self._ctx is not None:
            self._ctx.begin_wait()
        WATCHDOG.watch(self.guard)
        return self.guard

    def __exit__(self, exc_type: object, *rest: object) -> None:
        WATCHDOG.unwatch(self.guard)
        if self.guard.fired:
            self._lease.broken = True
        if self._ctx is not None:
            self._ctx.end_wait()  # (takes a turn again; may raise DeadlineExceeded)


class ConnectionPool(Generic[C]):
    def __init__(self, driver: Driver[C], limit: int = DEFAULT_MAX_CONNECTIONS,
                 blocked: BlockedNetworks | None = None) -> None:
        self.driver = driver
        self.limit = limit
        self.blocked = blocked or BlockedNetworks()
        self._cond = threading.Condition()
        self._idle: dict[Hashable, deque[_Pooled[C]]] = {}
        self._count = 0  # idle + lent + being opened
        self._closed = False
        WATCHDOG.add_reaper(self)

    # -- lending ---------------------------------------------------------------------------------
    def acquire(self, key: Hashable, deadline: float) -> Lease[C]:
        """A connection for `key`: an idle one, or a new one within the cap, waiting (without a
        CPU turn: see RequestContext.waiting) for one to come free until the deadline."""
        # The warm case first: an idle connection that is alive is handed out at once, without
        # giving the CPU turn back and taking it again (a wait that would not wait).
        item = self._take_idle(key)
        if item is not None:
            return Lease(self, item, deadline)
        with context.host_wait():
            return self._acquire(key, deadline)

    def _take_idle(self, key: Hashable) -> _Pooled[C] | None:
        with self._cond:
            idle = self._idle.get(key)
            item = idle.pop() if idle and not self._closed else None
        if item is None or _idle_alive(item.sock):
            return item
        self._discard(item)  # the server closed it: the slow path opens another
        return None

    def _acquire(self, key: Hashable, deadline: float) -> Lease[C]:
        while True:
            item, evicted = self._take_slot(key, deadline)
            for old in evicted:
                self._close(old)
            if item is None:
                break  # a slot is reserved: open a new connection
            if _idle_alive(item.sock):
                return Lease(self, item, deadline)
            self._discard(item)
        try:
            item = connect_within(deadline, lambda: self._open(key, deadline), self._late, self.driver.name)
        except ConnectTimeout:
            raise
        except ConnectFailed:
            self._free_slot()
            raise
        except Exception as exc:
            self._free_slot()
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        return Lease(self, item, deadline)

    def _take_slot(self, key: Hashable, deadline: float) -> tuple[_Pooled[C] | None, list[_Pooled[C]]]:
        """An idle connection for `key`, or None with a new slot reserved (waits for one)."""
        evicted: list[_Pooled[C]] = []
        with self._cond:
            while True:
                if self._closed:
                    raise ConnectFailed("the app was unloaded")
                idle = self._idle.get(key)
                if idle:
                    return idle.pop(), evicted
                if self._count < self.limit:
                    self._count += 1
                    return None, evicted
                other = self._oldest_idle()
                if other is not None:
                    evicted.append(other)  # its slot passes to this request
                    return None, evicted
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolExhausted(f"all {self.limit} connections of this app are in use")
                self._cond.wait(remaining)

    def _oldest_idle(self) -> _Pooled[C] | None:
        oldest: deque[_Pooled[C]] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        return oldest.popleft() if oldest else None

    def _open(self, key: Hashable, deadline: float) -> _Pooled[C]:
        conn = self.driver.connect(key, max(0.001, deadline - time.monotonic()), self.blocked)
        return _Pooled(conn, key, _dup_socket(self.driver.fileno(conn)))

    def _late(self, item: _Pooled[C] | None) -> None:
        """A connect the request stopped waiting for has ended: keep it idle, or free its slot."""
        if item is None:
            self._free_slot()
        else:
            self._put_idle(item)

    # -- returning -------------------------------------------------------------------------------
    def _release(self, lease: Lease[C]) -> None:
        item = lease.item
        if lease.broken or self._closed:
            self._discard(item)
            return
        try:
            reusable = self.driver.reset(item.conn, lease)
        except Exception:
            reusable = False
        if reusable and not lease.broken:
            self._put_idle(item)
        else:
            self._discard(item)

    def _put_idle(self, item: _Pooled[C]) -> None:
        item.idle_since = time.monotonic()
        with self._cond:
            if not self._closed:
                self._idle.setdefault(item.key, deque()).append(item)
                self._cond.notify()
                return
        self._discard(item)

    def _discard(self, item: _Pooled[C]) -> None:
        self._close(item)
        self._free_slot()

    def _free_slot(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def _close(self, item: _Pooled[C]) -> None:
        # Closing a dead connection may fail; the slot is freed all the same.
        with contextlib.suppress(Exception):
            self.driver.close(item.conn)
        if item.sock is not None:
            item.sock.close()

    # -- upkeep ----------------------------------------------------------------------------------
    def reap(self, now: float) -> None:
        """Close connections idle for IDLE_TIMEOUT_S (called by the watchdog thread)."""
        stale: list[_Pooled[C]] = []
        with self._cond:
            for idle in self._idle.values():
                while idle and now - idle[0].idle_since > IDLE_TIMEOUT_S:
                    stale.append(idle.popleft())
        for item in stale:
            self._discard(item)

    def close(self) -> None:
        """Close every idle connection now; lent ones are closed when released."""
        with self._cond:
            self._closed = True
            idle = [item for items in self._idle.values() for item in items]
            self._idle.clear()
            self._cond.notify_all()
        for item in idle:
            self._discard(item)

    def stats(self) -> tuple[int, int]:
        """(connections open or opening, idle ones)."""
        with self._cond:
            return self._count, sum(len(v) for v in self._idle.values())


_pools_lock = threading.Lock()
_pools: dict[tuple[int, str, bool], ConnectionPool[object]] = {}


def max_connections(family: str) -> int:
    """The current app's cap for `family` ("outbound_pg", ...): its runtime config, or the default.
    Read when the app's pool is made (its first connection); a new cap means a new load anyway."""
    config = context.current().settings.runtime_config
    cap = config.max_connections_for(family) if config is not None else None
    return cap or DEFAULT_MAX_CONNECTIONS


def blocked_networks() -> BlockedNetworks:
    """The current app's `[outbound_networking] block_networks` (empty without a runtime config)."""
    config = context.current().settings.runtime_config
    return config.blocked_networks if config is not None else BlockedNetworks()


def pool_for(app: object, driver: Driver[C], limit: int = DEFAULT_MAX_CONNECTIONS, *,
             operator_configured: bool = False) -> ConnectionPool[C]:
    """The app's pool for this driver's family, created on first use and closed with the app.

    Its block list is the app's (read here, like the cap: a new one means a new load), for the
    addresses the guest chooses. A store the operator configured in the runtime config (a
    Redis-backed key-value store) is not checked against it and gets a pool of its own: blocking
    private networks is how operators keep guests off their infrastructure, and that store
    usually lives there. Spin does not check those stores either."""
    key = (id(app), driver.name, operator_configured)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            blocked = BlockedNetworks() if operator_configured else blocked_networks()
            pool = ConnectionPool(driver, limit, blocked)  # type: ignore[arg-type]
            _pools[key] = pool
            weakref.finalize(app, _unload, key)
        return pool  # type: ignore[return-value]


def _unload(key: tuple[int, str, bool]) -> None:
    with _pools_lock:
        pool = _pools.pop(key, None)
    if pool is not None:
        pool.close()
