"""Turn one [apps.NAME] entry into a serving AppVersion: registry pull, then runtime load.

registry.load_app is blocking (oras-py is synchronous), so it runs in a worker thread; the runtime
compiles on a cache miss in its own worker thread. The event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import registry
import runtime
from router import loadwatch
from router.config import AppConfig
from router.versions import AppVersion, VersionInfo

log = logging.getLogger("lepton.router")


class AppLoader:
    def __init__(self, cache_dir: Path | None, state_root: Path) -> None:
        self.cache_dir = cache_dir or registry.default_cache_dir()
        self.state_root = state_root
        self.runtime = runtime.Runtime(self.cache_dir)

    async def load(self, app: AppConfig) -> AppVersion:
        started = time.monotonic()
        loaded = await asyncio.to_thread(
            registry.load_app, app.resolved_source, cache_dir=self.cache_dir, insecure=app.insecure
        )
        loadwatch.pulled(loaded.manifest_digest)  # the status page: the pull is over, compiling starts
        running = await self.runtime.load_app(loaded, app.settings(self.state_root))
        info = VersionInfo(
            source=app.source,
            reference=loaded.reference,
            digest=loaded.manifest_digest,
            name=loaded.name,
            version=loaded.version,
        )
        log.info(
            "loaded app %s from %s (%s) in %.2fs", app.name, app.source, loaded.manifest_digest,
            time.monotonic() - started,
        )
        return AppVersion(config=app, handler=running, info=info)

    def close(self) -> None:
        close = getattr(self.runtime, "close", None)
        if close is not None:
            close()
