"""Calls between the apps of this server, in process: `http://<app>.lepton.internal/...`.

The runtime asks here (runtime.types.AppDirectory) when a guest calls another app. The callee
must be serving and must list the caller in its routes.toml `allow_callers` (`["*"]`: any app of
this server); the caller's own allow-list was checked by the runtime. The request then goes to the
callee's routes as if it had come in on the shared port: the version serving now, held in use
until the response body ends (a hot swap does not release it mid-call), with the app's
`max_concurrent` and its request counters, as the dispatcher does for a client's request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from router.manager import AppManager
from router.versions import AppVersion
from runtime.types import AppCallRefused, IncomingRequest, OutgoingResponse

log = logging.getLogger("lepton.router")

BUSY = b"busy, retry later\n"


class ServedApps:
    """The runtime's AppDirectory over the manager's serving versions (router/serve.py sets it)."""

    def __init__(self, manager: AppManager) -> None:
        self.manager = manager

    def _find(self, target: str) -> tuple[str, AppVersion] | None:
        serving = self.manager.serving
        version = serving.get(target)
        if version is not None:
            return target, version
        # URL hosts are lower case; app names need not be. Only an unambiguous match counts.
        matches = [(name, v) for name, v in serving.items() if name.lower() == target]
        return matches[0] if len(matches) == 1 else None

    async def call(self, caller: str, target: str, request: IncomingRequest) -> OutgoingResponse:
        found = self._find(target)
        if found is None:
            raise AppCallRefused(f"no app {target!r} is serving")
        name, version = found
        config = version.config
        if not config.allows_caller(caller):
            raise AppCallRefused(f"app {name!r} does not list {caller!r} in allow_callers")
        status = self.manager.status.get(name)
        if status is None:  # removed between the swap and now
            raise AppCallRefused(f"no app {target!r} is serving")
        stats = status.stats
        limit = config.max_concurrent
        if limit is not None and stats.inflight >= limit:
            stats.rejected += 1
            return OutgoingResponse(503, [("content-type", b"text/plain; charset=utf-8"), ("retry-after", b"1")],
                                    _once(BUSY), whole_body=BUSY)
        version.acquire()
        stats.inflight += 1
        started = time.perf_counter()
        code = 500
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                stats.inflight -= 1
                stats.record(code, time.perf_counter() - started)
                version.release()

        try:
            response = await version.handler.handle(replace(request, served_as=name))
        except BaseException:
            release()
            raise
        code = response.status
        response.body = _Releasing(response.body, release)
        return response


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _Releasing:
    """The callee's response body; its end, however it comes (the last chunk, an error, aclose),
    ends the call's hold on the callee's version. A class rather than an async generator: a
    generator that was never started runs no `finally` when it is closed."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        self._body = body
        self._release = release

    def __aiter__(self) -> _Releasing:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._body.__anext__()
        except BaseException:  # StopAsyncIteration included: the body ended
            self._release()
            raise

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._release()
