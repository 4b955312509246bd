"""The admin listener's routes (Quart test client, no sockets): the live page and its assets, the
JSON it polls, and that the page can load nothing from anywhere but its own origin."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from router import status_page
from router.admin import create_admin_app
from router.config import AppConfig
from router.history import now_second
from router.manager import AppManager
from router.versions import AppVersion, VersionInfo
from runtime.types import IncomingRequest, OutgoingResponse

ROOT = Path(__file__).resolve().parents[2]


class _Handler:
    async def handle(self, request: IncomingRequest) -> OutgoingResponse:
        raise AssertionError("not called")

    def close(self) -> None:
        pass


class _Loader:
    async def load(self, app: AppConfig) -> AppVersion:
        return AppVersion(config=app, handler=_Handler(),
                          info=VersionInfo(app.source, app.source, "sha256:" + "ab" * 32, app.name, "1.0.0"))


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    routes = tmp_path / "routes.toml"
    routes.write_text('[apps.web]\nsource = "r.test/web:v1"\nhosts = ["web.test"]\n')
    manager = AppManager(routes, _Loader())
    assert await manager.reload()
    await manager.settled()  # (a reload returns once its loads started)
    stats = manager.status["web"].stats
    for _ in range(20):
        stats.record(200, 0.004)
    stats.record(500, 0.03)
    return create_admin_app(manager).test_client()


async def test_the_page_and_its_assets(client: Any) -> None:
    for path, kind in (("/", "text/html"), ("/page.css", "text/css"), ("/page.js", "text/javascript")):
        response = await client.get(path)
        assert response.status_code == 200 and response.content_type.startswith(kind), path
        assert response.headers["Content-Security-Policy"] == status_page.CSP
        assert "default-src 'none'" in status_page.CSP and "connect-src 'self'" in status_page.CSP
    assert (await client.get("/other.js")).status_code == 404
    plain = await client.get("/plain")  # the former table, for a browser without JavaScript
    assert plain.status_code == 200 and "<table>" in (await plain.get_data(as_text=True))


async def test_the_page_references_nothing_outside_its_origin() -> None:
    for name in status_page.ASSETS:
        text = (await status_page.asset(name)).decode()
        # The SVG namespace is a name, never fetched.
        urls = set(re.findall(r"[a-z]+://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), (name, urls)
        assert not re.search(r"""(src|href)\s*=\s*["']//|@import|url\(""", text), name
    html = (await status_page.asset("index.html")).decode()
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == ["page.css", "page.js", "status.json", "metrics", "plain",
                                                           "status.json"]


def test_package_data_ships_the_page() -> None:
    """pyproject's package-data globs must match every asset, or a wheel lacks the page."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    for name in status_page.ASSETS:
        assert any(fnmatch(name, g) for g in globs), name


async def test_status_json_has_loads_and_reloads(client: Any) -> None:
    data = await (await client.get("/status.json")).get_json()
    assert isinstance(data["now"], float)
    [reload] = data["recent_reloads"]
    assert reload["result"] == "applied" and reload["loaded"] == ["web"] and reload["problems"] == []
    [app] = data["apps"]
    assert app["load"]["phase"] == "done" and app["load"]["source"] == "r.test/web:v1"
    assert app["load"]["pull"] is None  # the scripted loader pulls nothing
    assert app["version"]["digest"] == "sha256:" + "ab" * 32


async def test_history_json(client: Any) -> None:
    response = await client.get("/status/history.json?window=60&step=5")
    assert response.status_code == 200
    data = await response.get_json()
    assert (data["window_s"], data["step_s"]) == (60, 5)
    web = data["apps"]["web"]
    assert len(web["requests"]) == len(web["errors"]) == len(web["p99_ms"]) == 12
    # The requests were recorded in the current second: not in a finished window yet (unless the
    # clock just turned), but in the numbers as soon as the second is over.
    assert sum(web["requests"]) in (0, 21)
    assert set(web["recent"]) == {"seconds", "requests", "errors", "rps", "error_pct", "p99_ms"}
    default = await (await client.get("/status/history.json")).get_json()
    assert (default["window_s"], default["step_s"]) == (300, 5)


async def test_history_json_numbers(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    later = now_second() + 1
    monkeypatch.setattr("router.admin.now_second", lambda: later)
    web = (await (await client.get("/status/history.json?window=10&step=1")).get_json())["apps"]["web"]
    # (Summed: the fixture's second may be the last one or, if the clock turned since, the one before.)
    assert sum(web["requests"]) == 21 and sum(web["errors"]) == 1
    [p99] = [v for v in web["p99_ms"] if v is not None]
    assert 5.0 < p99 <= 50.0
    recent = web["recent"]
    assert (recent["seconds"], recent["requests"], recent["errors"]) == (10, 21, 1)
    assert recent["rps"] == 2.1 and abs(recent["error_pct"] - 100 / 21) < 0.01


@pytest.mark.parametrize("query", ["window=60&step=3", "window=601&step=1", "window=0&step=1", "window=x"])
async def test_history_json_rejects_bad_windows(client: Any, query: str) -> None:
    response = await client.get(f"/status/history.json?{query}")
    assert response.status_code == 400
