"""AppManager with an apps directory: routes.toml and the directory are judged apart. A broken
routes.toml keeps its previous apps without holding back the directory; a routes.toml that takes
what a file's app holds is rejected as a whole; a directory that cannot be listed keeps its apps.
Real files; the loader finishes each load at once (what is loaded, not how, is the point)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from router.config import AppConfig
from router.manager import AppManager
from router.table import request_host
from router.versions import AppVersion, VersionInfo


class _Handler:
    async def handle(self, request: Any) -> Any:
        raise AssertionError("no requests here")

    def close(self) -> None:
        pass


class InstantLoader:
    async def load(self, app: AppConfig) -> AppVersion:
        return AppVersion(config=app, handler=_Handler(),
                          info=VersionInfo(app.source, app.source, f"sha256:{app.source}", app.name, None))


def served_by(manager: AppManager, host: str) -> str | None:
    route = manager.table.lookup(request_host(host), "/")
    return None if route is None else route.target.version.info.source


async def settle(manager: AppManager) -> None:
    await asyncio.wait_for(manager.settled(), 5)
    await asyncio.sleep(0.15)  # loads that finished join the table within JOIN_INTERVAL_S


def _app(source: str, host: str) -> str:
    return f'source = "{source}"\nhosts = ["{host}"]\n'


@pytest.fixture
async def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    routes = tmp_path / "routes.toml"
    routes.write_text('[server]\napps_dir = "apps.d"\nlisten = "0.0.0.0:8080"\n\n[apps.t]\nsource = "reg/t:v1"\n'
                      'hosts = ["t.test"]\n')
    apps = tmp_path / "apps.d"
    apps.mkdir()
    manager = AppManager(routes, InstantLoader(), listen=("0.0.0.0:8080",))
    yield manager, routes, apps
    await asyncio.wait_for(manager.close(), 5)


async def test_a_broken_routes_toml_does_not_hold_back_the_directory(setup) -> None:  # type: ignore[no-untyped-def]
    manager, routes, apps = setup
    (apps / "a.toml").write_text(_app("reg/a:v1", "a.test"))
    assert await manager.reload()
    await settle(manager)
    assert served_by(manager, "a.test") == "reg/a:v1" and served_by(manager, "t.test") == "reg/t:v1"
    routes.write_text(routes.read_text() + 'bogus = 1\n')
    (apps / "a.toml").write_text(_app("reg/a:v2", "a.test"))
    (apps / "b.json").write_text('{"source": "reg/b:v1", "hosts": ["b.test"]}')
    assert not await manager.reload()
    await settle(manager)
    assert manager.config_error is not None and "bogus" in manager.config_error
    assert served_by(manager, "a.test") == "reg/a:v2" and served_by(manager, "b.test") == "reg/b:v1"
    assert served_by(manager, "t.test") == "reg/t:v1"  # routes.toml's previous apps
    assert manager.reload_log[-1].accepted is False and "a" in manager.reload_log[-1].loaded


async def test_routes_toml_taking_a_files_name_or_host_is_rejected(setup) -> None:  # type: ignore[no-untyped-def]
    manager, routes, apps = setup
    (apps / "a.toml").write_text(_app("reg/a:v1", "a.test"))
    assert await manager.reload()
    await settle(manager)
    good = routes.read_text()
    routes.write_text(good + '\n[apps.x]\nsource = "reg/x:v1"\nhosts = ["a.test"]\n')
    assert not await manager.reload()
    assert f"also claimed by app 'a' ({apps / 'a.toml'})" in (manager.config_error or "")
    routes.write_text(good + '\n[apps.a]\nsource = "reg/a:v9"\nhosts = ["other.test"]\n')
    assert not await manager.reload()
    assert f"app 'a' is already defined in {apps / 'a.toml'}" in (manager.config_error or "")
    await settle(manager)
    assert served_by(manager, "a.test") == "reg/a:v1" and served_by(manager, "other.test") is None
    assert manager.owned["a"].file == str(apps / "a.toml")


async def test_an_unlistable_directory_keeps_its_apps(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    manager, _routes, apps = setup
    (apps / "a.toml").write_text(_app("reg/a:v1", "a.test"))
    assert await manager.reload()
    await settle(manager)
    os.rename(apps, apps.with_name("moved"))
    with caplog.at_level(logging.ERROR, logger="lepton.router"):
        assert await manager.reload()
    await settle(manager)
    assert served_by(manager, "a.test") == "reg/a:v1"
    assert next(p.message for p in manager.file_problems).startswith("cannot list the apps directory")
    os.rename(apps.with_name("moved"), apps)
    (apps / "a.toml").unlink()
    assert await manager.reload()
    await settle(manager)
    assert served_by(manager, "a.test") is None and manager.file_problems == ()


async def test_available_routes_are_logged_on_load_and_on_route_changes(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    manager, _routes, apps = setup
    (apps / "a.toml").write_text('source = "reg/a:v1"\nroutes = [{ hosts = ["a.test"] }, { prefix = "/a" }]\n')
    with caplog.at_level(logging.INFO, logger="lepton.router"):
        assert await manager.reload()
        await settle(manager)
        (apps / "a.toml").write_text(_app("reg/a:v1", "moved.test"))  # routes only: no new load
        assert await manager.reload()
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Available Routes of a ")]
    assert messages == [
        f"Available Routes of a ({apps / 'a.toml'}):\n  a: http://a.test:8080/\n  a: http://127.0.0.1:8080/a/...",
        f"Available Routes of a ({apps / 'a.toml'}):\n  a: http://moved.test:8080/",
    ]
