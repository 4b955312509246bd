"""The Quart application on the shared port.

Quart owns the lifespan (start loading apps, watch routes.toml, release everything at shutdown) and
the reserved paths under /.well-known/lepton/. Every other HTTP request goes straight to the
Dispatcher (router/dispatch.py), the catch-all, without a Quart request context.
"""

from __future__ import annotations

import asyncio
import json
import logging

from quart import Quart, Response

from router.asgi import Receive, Scope, Send
from router.config import RESERVED_PREFIX
from router.dispatch import Dispatcher
from router.manager import AppManager
from router.proxy import TrustedProxies
from router.watch import ConfigWatcher

log = logging.getLogger("lepton.router")

_RESERVED = RESERVED_PREFIX + "/"


class RouterApp(Quart):
    def __init__(self, manager: AppManager, trusted: TrustedProxies, *, watch: bool = True) -> None:
        super().__init__("lepton_router")
        self.manager = manager
        self.dispatcher = Dispatcher(manager, trusted)
        self.watcher = ConfigWatcher(manager, watch_file=watch)
        self._initial: asyncio.Task[bool] | None = None
        self.add_url_rule(f"{RESERVED_PREFIX}/health", "health", self._health, methods=["GET", "HEAD"])
        self.add_url_rule(f"{RESERVED_PREFIX}/ready", "ready", self._ready, methods=["GET", "HEAD"])
        self.before_serving(self._start)
        self.after_serving(self._stop)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == "http" and not scope["path"].startswith(_RESERVED):
            await self.dispatcher(scope, receive, send)
            return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]

    async def _start(self) -> None:
        # Load in the background: the port opens at once, /health answers, /ready says when.
        self._initial = asyncio.create_task(self.manager.reload())
        self.watcher.start()

    async def _stop(self) -> None:
        await self.watcher.stop()
        if self._initial is not None and not self._initial.done():
            self._initial.cancel()
        await self.manager.close()

    async def _health(self) -> Response:
        return Response("ok\n", content_type="text/plain; charset=utf-8")

    async def _ready(self) -> Response:
        # Counts by state only: this is on the public port, so it names no app.
        manager = self.manager
        states: dict[str, int] = {}
        for status in manager.status.values():
            states[status.state] = states.get(status.state, 0) + 1
        body = json.dumps({"ready": manager.ready, "apps": states}, sort_keys=True) + "\n"
        return Response(body, status=200 if manager.ready else 503, content_type="application/json")
