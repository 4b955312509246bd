"""Loads and reloads as the status page sees them: AppManager with a scripted loader that pulls
on a worker thread (as registry.load_app does) and stops between phases for the test to look."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from registry.progress import Progress
from router import loadwatch
from router.config import AppConfig
from router.manager import AppManager
from router.versions import AppVersion, VersionInfo
from runtime.types import IncomingRequest, OutgoingResponse

LIMIT_S = 10.0


class _Handler:
    async def handle(self, request: IncomingRequest) -> OutgoingResponse:
        raise AssertionError("not called")

    def close(self) -> None:
        pass


class ScriptedLoader:
    """Pulls two layers on a worker thread, then waits for the test at `pulling` and `compiling`."""

    def __init__(self) -> None:
        self.pulling = asyncio.Event()
        self.compiling = asyncio.Event()
        self.fail = False

    async def load(self, app: AppConfig) -> AppVersion:
        def pull() -> Progress:
            progress = Progress("pulled", app.source, stream=io.StringIO())
            progress.plan(3, 3000, 1)
            progress.layer_started("sha256:aa", 1000)
            progress.advance(1000, "sha256:aa")
            progress.layer_done("sha256:aa")
            progress.layer_started("sha256:bb", 2000)
            progress.advance(500, "sha256:bb")
            return progress

        progress = await asyncio.to_thread(pull)
        await self.pulling.wait()
        progress.advance(1500, "sha256:bb")
        progress.layer_done("sha256:bb")
        progress.finish()
        loadwatch.pulled("sha256:d1")
        await self.compiling.wait()
        if self.fail:
            raise RuntimeError("component 'main': compile failed")
        return AppVersion(config=app, handler=_Handler(),
                          info=VersionInfo(app.source, app.source, "sha256:d1", app.name, None))


async def _until(predicate: Any) -> None:
    async with asyncio.timeout(LIMIT_S):
        while not predicate():
            await asyncio.sleep(0.01)


def _routes(path: Path, extra: str = "") -> None:
    path.write_text('[apps.web]\nsource = "r.test/web:v1"\nhosts = ["web.test"]\n' + extra)


async def test_a_load_reports_its_pull_then_its_compile(tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    _routes(routes)
    loader = ScriptedLoader()
    manager = AppManager(routes, loader)
    reload = asyncio.create_task(manager.reload())
    await _until(lambda: "web" in manager.status and manager.status["web"].load is not None
                 and manager.status["web"].load.pull is not None)
    view = manager.status["web"].load.to_json()  # type: ignore[union-attr]
    assert view["phase"] == "pulling" and view["source"] == "r.test/web:v1" and view["digest"] is None
    pull = view["pull"]
    assert (pull["layers_done"], pull["layers_total"], pull["layers_cached"]) == (1, 3, 1)
    assert (pull["bytes_done"], pull["bytes_total"], pull["finished"]) == (1500, 3000, False)
    assert pull["active"] == [{"digest": "sha256:bb", "bytes_done": 500, "size": 2000}]

    loader.pulling.set()
    await _until(lambda: manager.status["web"].load.phase == "compiling")  # type: ignore[union-attr]
    view = manager.status["web"].load.to_json()  # type: ignore[union-attr]
    assert view["digest"] == "sha256:d1" and view["pull"]["bytes_done"] == 3000 and view["pull"]["finished"]
    assert view["pull_s"] is not None and view["compile_s"] is None

    loader.compiling.set()
    assert await asyncio.wait_for(reload, LIMIT_S)
    await asyncio.wait_for(manager.settled(), LIMIT_S)  # (a reload returns once its loads started)
    view = manager.status["web"].load.to_json()  # type: ignore[union-attr]
    assert view["phase"] == "done" and view["compile_s"] is not None and view["finished_at"] is not None
    assert view["elapsed_s"] >= view["pull_s"] and view["error"] is None
    last = manager.reload_log[-1].to_json()
    assert last["result"] == "applied" and last["loaded"] == ["web"] and last["failed"] == []


async def test_a_failed_load_and_a_rejected_edit(tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    _routes(routes)
    loader = ScriptedLoader()
    loader.pulling.set()
    loader.compiling.set()
    loader.fail = True
    manager = AppManager(routes, loader)
    assert await asyncio.wait_for(manager.reload(), LIMIT_S)
    await asyncio.wait_for(manager.settled(), LIMIT_S)
    view = manager.status["web"].load.to_json()  # type: ignore[union-attr]
    assert view["phase"] == "failed" and "compile failed" in view["error"] and view["compile_s"] is not None
    assert manager.reload_log[-1].to_json()["failed"] == ["web"]

    _routes(routes, '\n[apps.broken]\nsource = "x"\nprefix = "no-slash"\n')
    assert not await asyncio.wait_for(manager.reload(), LIMIT_S)
    rejected = manager.reload_log[-1].to_json()
    assert rejected["result"] == "rejected" and rejected["loaded"] == []
    [problem] = rejected["problems"]
    assert (problem["file"], problem["line"], problem["app"], problem["field"]) == (str(routes), 7, "broken", "prefix")
    assert problem["text"].startswith(f"{routes}:7: app 'broken'")
    assert manager.status["web"].load.phase == "failed"  # type: ignore[union-attr]  # untouched


def test_pulled_outside_a_watched_load_is_a_no_op() -> None:
    loadwatch.pulled("sha256:x")  # the CLI's pull, or a loader used on its own
    assert Progress.watcher.get() is None
    Progress("pulled", "x", stream=io.StringIO()).finish()  # nobody watching: nothing happens
