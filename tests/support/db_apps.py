"""The spin_py_db guest app (tests/fixtures/spin_py_db) loaded into a Runtime, for the outbound
database tests: requests with a time bound, and whether the runtime's worker threads are back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from runtime import Runtime
from runtime.http.app import RunningApp
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.runtime_helpers import read, request

APP_SRC = FIXTURES_DIR / "spin_py_db"
REQUEST_BOUND_S = 60.0  # no test request may take longer, whatever happens


def db_wasm() -> Path:
    return build_python_app(APP_SRC)


async def load(rt: Runtime, wasm: Path, allowed: Sequence[str], *, timeout_s: float = 20.0, name: str = "db") -> RunningApp:
    app = loaded_app(component("web", wasm, metadata={"allowed_outbound_hosts": list(allowed)}), name=name)
    return await rt.load_app(app, AppSettings(timeout_s=timeout_s, memory_bytes=256 * MiB))


async def call(running: RunningApp, path: str, **query: str) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        resp = await running.handle(request(path, query=urlencode(query)))
        return resp.status, await read(resp)

    return await asyncio.wait_for(go(), REQUEST_BOUND_S)


async def call_json(running: RunningApp, path: str, **query: str) -> tuple[int, Any]:
    status, body = await call(running, path, **query)
    return status, (json.loads(body) if body.startswith((b"{", b"[")) else body.decode())


async def timed(running: RunningApp, path: str, **query: str) -> tuple[int, bytes, float]:
    start = time.monotonic()
    status, body = await call(running, path, **query)
    return status, body, time.monotonic() - start


def workers_idle(rt: Runtime) -> bool:
    """Every guest worker thread the runtime started is idle again (none stuck in a call)."""
    pool = rt._pool
    with pool._lock:
        return len(pool._idle) == len(pool._threads) and not pool._backlog


async def wait_workers_idle(rt: Runtime, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if workers_idle(rt):
            return True
        await asyncio.sleep(0.05)
    return workers_idle(rt)
