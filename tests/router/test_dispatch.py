"""The ASGI data plane with a real runtime and the WAT guest, driven at the ASGI level.

The test plays the HTTP server (it owns receive/send), so it can pace the request body and
disconnect at will; the app side is real: routing table, runtime, wasm guest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import runtime
from router.config import AppConfig, RouteConfig
from router.dispatch import Dispatcher
from router.manager import AppManager, Endpoint
from router.metrics import AppStats
from router.proxy import TrustedProxies
from router.table import RoutingTable
from router.versions import AppVersion, VersionInfo
from runtime.testing import component, loaded_app
from runtime.types import AppSettings

GUEST = Path(__file__).resolve().parents[1] / "fixtures" / "wat" / "guest.wat"


class _NoLoader:
    async def load(self, app: AppConfig) -> AppVersion:
        raise AssertionError("the table is installed directly")


@pytest.fixture
async def dispatcher(tmp_path: Path) -> AsyncIterator[tuple[Dispatcher, AppVersion, AppStats]]:
    rt = runtime.Runtime(tmp_path / "cache")
    running = await rt.load_app(loaded_app(component("guest", GUEST), app_dir=tmp_path / "app"), AppSettings())
    app = AppConfig(name="guest", source="local", resolved_source="local", routes=(RouteConfig((), "/g"),))
    version = AppVersion(config=app, handler=running, info=VersionInfo("local", "local", "sha256:0", "guest", None))
    stats = AppStats()
    manager = AppManager(tmp_path / "routes.toml", _NoLoader())
    manager.table = RoutingTable.build([("guest", (), "/g", Endpoint(version, app, stats))])
    try:
        yield Dispatcher(manager, TrustedProxies([])), version, stats
    finally:
        version.retire()
        rt.close()


def _scope(path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http", "http_version": "1.1", "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "headers": [(b"host", b"x.test"), *(headers or [])],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
    }


async def test_streams_request_body_as_it_arrives(dispatcher) -> None:  # type: ignore[no-untyped-def]
    dispatch, version, stats = dispatcher
    chunks = [b"one,", b"two,", b"three"]
    sent: list[dict[str, Any]] = []
    first_response_chunk = asyncio.Event()
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await incoming.put({"type": "http.request", "body": chunks[0], "more_body": True})

    async def receive() -> dict[str, Any]:
        return await incoming.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_response_chunk.set()

    task = asyncio.create_task(dispatch(_scope("/g/echo", "POST", [(b"transfer-encoding", b"chunked")]), receive, send))
    # The guest answers with the first chunk before the rest of the request exists: streaming.
    await asyncio.wait_for(first_response_chunk.wait(), 30)
    assert version.inflight == 1 and stats.inflight == 1
    await incoming.put({"type": "http.request", "body": chunks[1], "more_body": True})
    await incoming.put({"type": "http.request", "body": chunks[2], "more_body": False})
    await asyncio.wait_for(task, 30)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"one,two,three"
    assert sent[-1]["more_body"] is False
    assert version.inflight == 0 and stats.requests == 1 and stats.by_class["2xx"] == 1


async def test_client_disconnect_stops_a_long_download(dispatcher) -> None:  # type: ignore[no-untyped-def]
    dispatch, version, stats = dispatcher
    total_kib = 100 * 1024  # 100 MiB if nobody stopped it
    gone = asyncio.Event()
    sent_bytes = 0
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent_bytes
        sent_bytes += len(message.get("body", b""))
        if sent_bytes >= 256 * 1024:
            gone.set()  # the client hangs up after 256 KiB
        await asyncio.sleep(0)

    await asyncio.wait_for(dispatch(_scope(f"/g/big/{total_kib}"), receive, send), 60)
    assert sent_bytes < 10 * 1024 * 1024
    assert version.inflight == 0 and stats.inflight == 0


async def test_unknown_route_and_hop_by_hop_headers(dispatcher) -> None:  # type: ignore[no-untyped-def]
    dispatch, _, _ = dispatcher
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await dispatch(_scope("/nope"), receive, send)
    assert sent[0]["status"] == 404 and sent[1]["body"] == b"not found\n"
    sent.clear()
    await dispatch(_scope("/g/x", headers=[(b"connection", b"keep-alive"), (b"x-a", b"1")]), receive, send)
    names = [k for k, _ in sent[0]["headers"]]
    assert b"x-req-x-a" in names  # the guest saw the request header
    assert all(n not in names for n in (b"connection", b"transfer-encoding", b"keep-alive"))


async def test_a_routed_request_marks_the_server_busy_for_heap_maintenance(dispatcher) -> None:  # type: ignore[no-untyped-def]
    dispatch, _, _ = dispatcher
    manager = dispatch.manager
    assert not manager._busy()  # nothing served yet: a quiet moment

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    await dispatch(_scope("/g/x"), receive, send)
    assert manager._busy()  # a request just now: the full collection waits
