"""One loaded version of an app, counted while requests use it and released after its last one.

The hot swap never closes a version that still serves a request: the swap only marks the old
version retired; the version closes itself when its in-flight count drops to zero (or at once when
it is idle). Everything runs on the event loop thread, so plain integers suffice.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.config import AppConfig
from runtime.types import IncomingRequest, OutgoingResponse

log = logging.getLogger("lepton.router")

_closing: set[asyncio.Future[Any]] = set()  # keeps async close()s alive until they finish


class Handler(Protocol):
    """What runtime.RunningApp provides."""

    async def handle(self, request: IncomingRequest) -> OutgoingResponse: ...

    def close(self) -> Any: ...


@dataclass(frozen=True)
class VersionInfo:
    """Identity of a loaded version, for the status page and logs."""

    source: str
    reference: str
    digest: str  # manifest digest: the version identity
    name: str  # the Spin app's own name from its lock
    version: str | None


@dataclass(eq=False)
class AppVersion:
    config: AppConfig  # the config it was loaded with (routes are updated in place on reload)
    handler: Handler
    info: VersionInfo
    loaded_at: float = field(default_factory=time.time)
    inflight: int = 0
    retired: bool = False
    closed: bool = False

    def acquire(self) -> None:
        self.inflight += 1

    def release(self) -> None:
        self.inflight -= 1
        if self.retired and self.inflight == 0:
            self._close()

    def retire(self) -> None:
        """Called once the routing table no longer points here; closes when idle."""
        self.retired = True
        if self.inflight == 0:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        log.info("released %s (%s)", self.config.name, self.info.digest)
        try:
            result = self.handler.close()
            if inspect.isawaitable(result):
                # close() should be synchronous; tolerate a coroutine by scheduling it.
                future = asyncio.ensure_future(result)
                _closing.add(future)
                future.add_done_callback(_closing.discard)
        except Exception:
            log.exception("closing %s failed", self.config.name)
