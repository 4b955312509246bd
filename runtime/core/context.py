"""Per-request state shared by the host interfaces: the resource table, the request being served,
and one typed slot per capability.

Each capability declares the slots it keeps per request as module-level :class:`StateKey` objects
(as each Spin factor has its own InstanceState): ``STDIN = StateKey[bytes]("wasi-cli.stdin")``,
then ``ctx.get(STDIN)`` / ``ctx.set(STDIN, data)``, typed, with no string keys shared between
files. The core knows no capability: it only stores what they declare.

wasmtime-py hands host functions only a StoreContext, so the request a host call belongs to is
found through a thread-local: the executor binds the RequestContext on the thread that enters the
guest (`bind`), and every host call made by that guest runs on that same thread. One guest call
is never interleaved with another on a thread, so a single slot (with save/restore for nesting)
is enough.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from runtime.errors import DeadlineExceeded, GuestTrap, NeedsWorkerThread
from runtime.types import AppSettings

if TYPE_CHECKING:
    from registry.loaded import LoadedApp, LoadedComponent
    from runtime.core.guest_io import GuestRequest, ResponseSink

T = TypeVar("T")


class StateKey(Generic[T]):
    """A typed per-request slot, declared once by the capability or executor that owns it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name  # for repr and debugging only: keys compare by identity

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


class ResourceTable:
    """Host objects behind the resource handles of one request (rep -> object)."""

    __slots__ = ("_items", "_next")

    def __init__(self) -> None:
        self._items: dict[int, Any] = {}
        self._next = 1

    def push(self, obj: Any) -> int:
        rep = self._next
        self._next += 1
        self._items[rep] = obj
        return rep

    def get(self, rep: int, kind: type[T]) -> T:
        obj = self._items.get(rep)
        if not isinstance(obj, kind):
            raise GuestTrap(f"unknown {kind.__name__} handle {rep}")
        return obj

    def take(self, rep: int, kind: type[T]) -> T:
        obj = self.get(rep, kind)
        del self._items[rep]
        return obj

    def discard(self, rep: int) -> Any:
        return self._items.pop(rep, None)

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> list[Any]:
        return list(self._items.values())


@dataclass(eq=False)
class RequestContext:
    """Everything a host function may need about the request its guest is serving."""

    app: LoadedApp
    component: LoadedComponent
    settings: AppSettings
    deadline: float  # time.monotonic() value after which waits give up
    log: logging.Logger  # guest-facing logger, already prefixed with app and component
    table: ResourceTable = field(default_factory=ResourceTable)
    # What each capability's prepare() returned at load time, by capability name: the component's
    # own mapping, shared by every request (read-only here, never copied per request).
    prepared: Mapping[str, Any] = field(default_factory=dict)
    # The request being served and where its response goes (set by the executor; None in a
    # load-time trial instantiation).
    request: GuestRequest | None = None
    response: ResponseSink | None = None
    # Per-request slots of the capabilities and executors (see StateKey).
    _slots: dict[StateKey[Any], Any] = field(default_factory=dict)
    # Callbacks run when the request's guest work ends (close connections, flush, ...).
    cleanups: list[Any] = field(default_factory=list)
    # Called before the guest blocks (waits on a body, a pollable, ...), so output it left
    # pending reaches the client first (see guest_io.ResponseSink).
    on_block: Any = None
    blocked: bool = False  # the guest waited for something (see notify_block)
    # Around host-side waits (see waiting()): the scheduler gives the app's CPU turn away while
    # the guest waits, and takes one back before the guest runs again.
    on_wait: Callable[[], None] | None = None
    on_resume: Callable[[], None] | None = None
    # Running inline on the event loop: host functions of capabilities that are not inline-safe
    # refuse to run (NeedsWorkerThread; see runtime/core/linking.py), and so does any wait.
    inline: bool = False

    def get(self, key: StateKey[T]) -> T | None:
        return self._slots.get(key)

    def set(self, key: StateKey[T], value: T) -> None:
        self._slots[key] = value

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            raise DeadlineExceeded("request deadline exceeded")

    def notify_block(self) -> None:
        """Called by host functions just before they wait for something not yet ready."""
        if self.inline:  # (a wait would hold up the event loop: give the inline run up instead)
            raise NeedsWorkerThread("a wait for something not ready yet (a timer, a stream)")
        self.blocked = True
        if self.on_block is not None:
            self.on_block()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Wrap a host-side wait (a pollable, the request body, a slow client, the network):
        pending output is flushed first, and the guest holds no CPU turn while it waits."""
        self.begin_wait()
        try:
            yield
        finally:
            self.end_wait()

    def begin_wait(self) -> None:
        """`waiting()` in two calls, for a hot path that already has a context manager of its
        own (a database statement): each `end_wait` must follow its `begin_wait`."""
        self.notify_block()
        if self.on_wait is not None:
            self.on_wait()

    def end_wait(self) -> None:
        if self.on_resume is not None:
            self.on_resume()  # may raise DeadlineExceeded: the guest does not run again

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception:  # a cleanup failure must not hide the request's outcome
                self.log.exception("cleanup failed")
        self.cleanups.clear()


_local = threading.local()


def current_or_none() -> RequestContext | None:
    """The RequestContext bound on this thread, if any (host-side helpers used outside a guest)."""
    return getattr(_local, "ctx", None)


def host_wait() -> contextlib.AbstractContextManager[None]:
    """`current().waiting()` on a guest's thread, nothing elsewhere: for helpers that wait on
    the network or a lock and are also used outside a request (pools, streams)."""
    ctx: RequestContext | None = getattr(_local, "ctx", None)
    return ctx.waiting() if ctx is not None else contextlib.nullcontext()


def current() -> RequestContext:
    """The RequestContext of the guest calling into the host on this thread."""
    ctx: RequestContext | None = getattr(_local, "ctx", None)
    if ctx is None:
        raise GuestTrap("host call outside of a request")
    return ctx


@contextmanager
def bind(ctx: RequestContext) -> Iterator[RequestContext]:
    previous = getattr(_local, "ctx", None)
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = previous
