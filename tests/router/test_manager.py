"""AppManager: loads join the table as they finish, never holding up other apps or later edits
(issue 11, item 2). The loader here lets the test decide when each load finishes or fails (the
order is the point; tests/e2e/test_router_registry.py does the same with a real registry, a hung
peer and a real server); everything else is real: routes.toml files, the table, the versions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from router.config import AppConfig
from router.manager import AppManager
from router.table import request_host
from router.versions import AppVersion, VersionInfo


class _Handler:
    def __init__(self) -> None:
        self.closed = False

    async def handle(self, request: Any) -> Any:
        raise AssertionError("no requests here")

    def close(self) -> None:
        self.closed = True


class GatedLoader:
    """Each load waits for the test: `finish(source)` or `fail(source, error)`."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Future[None]] = {}
        self.started: list[str] = []
        self.versions: list[AppVersion] = []

    def _gate(self, source: str) -> asyncio.Future[None]:
        if source not in self.gates:
            self.gates[source] = asyncio.get_running_loop().create_future()
        return self.gates[source]

    async def load(self, app: AppConfig) -> AppVersion:
        self.started.append(app.source)
        await asyncio.shield(self._gate(app.source))
        version = AppVersion(config=app, handler=_Handler(),
                             info=VersionInfo(app.source, app.source, f"sha256:{app.source}", app.name, None))
        self.versions.append(version)
        return version

    def finish(self, source: str) -> None:
        self._gate(source).set_result(None)

    def fail(self, source: str, error: str) -> None:
        self._gate(source).set_exception(RuntimeError(error))


def routes_file(path: Path, apps: dict[str, tuple[str, str]]) -> Path:
    text = ""
    for name, (source, host) in apps.items():
        text += f'[apps.{name}]\nsource = "{source}"\nhosts = ["{host}"]\n\n'
    path.write_text(text)
    return path


def served_by(manager: AppManager, host: str) -> str | None:
    route = manager.table.lookup(request_host(host), "/")
    return None if route is None else route.target.version.info.source


async def reload(manager: AppManager) -> bool:
    """An edit must apply without waiting for pending loads: bounded, so a wait is a failure."""
    try:
        return await asyncio.wait_for(manager.reload(), 5)
    except TimeoutError:
        pytest.fail("reload() waited for a pending load")


async def until(predicate: Any, what: str, timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
async def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    loader = GatedLoader()
    manager = AppManager(tmp_path / "routes.toml", loader)
    yield manager, loader, tmp_path / "routes.toml"
    for gate in loader.gates.values():  # let anything still waiting end
        if not gate.done():
            gate.set_exception(RuntimeError("test over"))
    await asyncio.wait_for(manager.close(), 5)


async def test_first_table_goes_live_with_the_apps_that_are_ready(setup) -> None:  # type: ignore[no-untyped-def]
    manager, loader, routes = setup
    routes_file(routes, {"fast": ("reg/fast:v1", "fast.test"), "hung": ("reg/hung:v1", "hung.test")})
    assert await reload(manager)  # returns without waiting for the loads
    await until(lambda: sorted(loader.started) == ["reg/fast:v1", "reg/hung:v1"], "both loads to start")
    assert not manager.ready
    loader.finish("reg/fast:v1")
    await until(lambda: served_by(manager, "fast.test") == "reg/fast:v1", "fast to join")
    assert manager.status["hung"].state == "loading" and not manager.ready
    loader.fail("reg/hung:v1", "registry did not answer")
    await until(lambda: manager.status["hung"].state == "failed", "hung to fail")
    await until(lambda: manager.ready, "ready: a failed app does not hold readiness back")
    assert manager.status["hung"].error == "registry did not answer"
    assert served_by(manager, "hung.test") is None and served_by(manager, "fast.test") == "reg/fast:v1"


async def test_a_pending_load_never_blocks_an_edit(setup) -> None:  # type: ignore[no-untyped-def]
    manager, loader, routes = setup
    routes_file(routes, {"fast": ("reg/fast:v1", "fast.test"), "hung": ("reg/hung:v1", "hung.test")})
    await reload(manager)
    loader.finish("reg/fast:v1")
    await until(lambda: served_by(manager, "fast.test") is not None, "fast to join")
    # Move fast to another host and add an app, while hung is still pending.
    routes_file(routes, {"fast": ("reg/fast:v1", "moved.test"), "hung": ("reg/hung:v1", "hung.test"),
                         "new": ("reg/new:v1", "new.test")})
    assert await reload(manager)
    assert served_by(manager, "moved.test") == "reg/fast:v1" and served_by(manager, "fast.test") is None
    await asyncio.sleep(0.05)
    assert loader.started.count("reg/hung:v1") == 1  # the pending load runs on, not restarted
    loader.finish("reg/new:v1")
    await until(lambda: served_by(manager, "new.test") == "reg/new:v1", "new to join")
    assert manager.pending == ("hung",)


async def test_an_edit_abandons_a_load_it_no_longer_wants(setup) -> None:  # type: ignore[no-untyped-def]
    manager, loader, routes = setup
    routes_file(routes, {"app": ("reg/app:v1", "app.test")})
    await reload(manager)
    routes_file(routes, {"app": ("reg/app:v2", "app.test")})
    await reload(manager)
    loader.finish("reg/app:v2")
    await until(lambda: served_by(manager, "app.test") == "reg/app:v2", "v2 to join")
    # v1's load was abandoned; the task was cancelled so it never produced a version.
    assert [v.info.source for v in loader.versions] == ["reg/app:v2"]
    loader.finish("reg/app:v1")
    await asyncio.sleep(0.05)
    assert served_by(manager, "app.test") == "reg/app:v2"


async def test_routes_move_to_a_loading_app_without_a_gap(setup) -> None:  # type: ignore[no-untyped-def]
    manager, loader, routes = setup
    routes_file(routes, {"old": ("reg/old:v1", "site.test")})
    await reload(manager)
    loader.finish("reg/old:v1")
    await until(lambda: served_by(manager, "site.test") == "reg/old:v1", "old to join")
    old_version = manager.serving["old"]
    # Replace the app by another one on the same host: the old one keeps the host until the new joins.
    routes_file(routes, {"new": ("reg/new:v1", "site.test")})
    await reload(manager)
    assert served_by(manager, "site.test") == "reg/old:v1" and not old_version.closed
    loader.finish("reg/new:v1")
    await until(lambda: served_by(manager, "site.test") == "reg/new:v1", "new to take over")
    assert old_version.closed  # released once no table uses it


async def test_handover_ends_when_the_new_app_fails(setup) -> None:  # type: ignore[no-untyped-def]
    manager, loader, routes = setup
    routes_file(routes, {"old": ("reg/old:v1", "site.test"), "other": ("reg/other:v1", "other.test")})
    await reload(manager)
    loader.finish("reg/old:v1")
    loader.finish("reg/other:v1")
    await until(lambda: served_by(manager, "other.test") is not None and served_by(manager, "site.test") is not None,
                "both to join")
    old_version = manager.serving["old"]
    routes_file(routes, {"new": ("reg/new:v1", "site.test"), "other": ("reg/other:v1", "other.test")})
    await reload(manager)
    loader.fail("reg/new:v1", "boom")
    await until(lambda: served_by(manager, "site.test") is None, "the handover to end")
    assert old_version.closed and served_by(manager, "other.test") == "reg/other:v1"


async def test_retrying_a_failed_app_keeps_the_instance_ready(setup) -> None:  # type: ignore[no-untyped-def]
    manager, loader, routes = setup
    routes_file(routes, {"ok": ("reg/ok:v1", "ok.test"), "bad": ("reg/bad:v1", "bad.test")})
    await reload(manager)
    loader.finish("reg/ok:v1")
    loader.fail("reg/bad:v1", "not found")
    await until(lambda: manager.ready, "ready")
    loader.gates.pop("reg/bad:v1")  # the retry will wait
    routes_file(routes, {"ok": ("reg/ok:v1", "ok2.test"), "bad": ("reg/bad:v1", "bad.test")})  # unrelated edit
    await reload(manager)
    await until(lambda: loader.started.count("reg/bad:v1") == 2, "the retry")  # every edit retries apps that do not serve
    assert manager.status["bad"].state == "failed" and manager.ready
    # Fixing the source is a new first load: it is waited for.
    routes_file(routes, {"ok": ("reg/ok:v1", "ok2.test"), "bad": ("reg/bad:v2", "bad.test")})
    await reload(manager)
    assert manager.status["bad"].state == "loading" and not manager.ready
    loader.finish("reg/bad:v2")
    await until(lambda: manager.ready and served_by(manager, "bad.test") == "reg/bad:v2", "the fixed app")
