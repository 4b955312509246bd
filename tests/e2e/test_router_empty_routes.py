"""routes.toml caught empty or half-written: the running table keeps serving (issue 11, item 5).

Editors that truncate and then write, `cp`, and configuration tools that rename an empty file into
place all show the server an empty routes.toml for a moment. Such a file is a config error (status
names it) and every app keeps serving; the watcher reads a change only once the file has stopped
changing, so a file written in two steps is read once, whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from router.config import EMPTY_MESSAGE
from tests.support.server import RouterServer, push_hellos, write_routes

pytestmark = pytest.mark.usefixtures("registry")

HOSTS = {"alpha.test": "alpha          \n", "beta.test": "beta           \n"}
WAIT_S = 30.0


@pytest.fixture(scope="module")
def sources(registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return push_hellos(registry.host, tmp_path_factory.mktemp("empty-routes"), {
        "alpha": ("empty/alpha:v1", "alpha"),
        "beta": ("empty/beta:v1", "beta"),
    })


def _server_part(cache: Path) -> str:
    return f'[server]\ncache_dir = "{cache}"\n'


def _app_part(name: str, source: str) -> str:
    return f'\n[apps.{name}]\nsource = "{source}"\ninsecure = true\nhosts = ["{name}.test"]\n'


@pytest.fixture
def served(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
           router_cache_dir: Path) -> tuple[RouterServer, Path, str]:
    routes = tmp_path / "routes.toml"
    text = _server_part(router_cache_dir) + "".join(_app_part(n, s) for n, s in sources.items())
    routes.write_text(text)
    server: RouterServer = router_server(routes)
    server.wait_ready()
    return server, routes, text


@contextmanager
def _watching(server: RouterServer) -> Iterator[list[tuple[str, int, str]]]:
    """Request both apps over and over while the body runs; yields the list of failures seen."""
    failures: list[tuple[str, int, str]] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=10.0) as client:
            while not stop.is_set():
                for host, body in HOSTS.items():
                    try:
                        response = client.get(f"{server.base_url}/", headers={"host": host})
                    except httpx.HTTPError as exc:
                        failures.append((host, 0, repr(exc)))
                        continue
                    if (response.status_code, response.text) != (200, body):
                        failures.append((host, response.status_code, response.text))
                time.sleep(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        stop.set()
        thread.join(timeout=15)


def _config_error(server: RouterServer) -> str | None:
    error: str | None = server.status()["config_error"]
    return error


def _wait_config_error(server: RouterServer, present: bool) -> None:
    what = "the config error to be reported" if present else "the config error to clear"
    server.wait_for(lambda: (_config_error(server) is not None) == present, WAIT_S, what)


def _assert_serving(server: RouterServer) -> None:
    for host, body in HOSTS.items():
        response = server.get("/", host=host)
        assert (response.status_code, response.text) == (200, body), server.log()
    assert server.get("/.well-known/lepton/ready").status_code == 200
    assert {a["name"]: a["state"] for a in server.status()["apps"]} == {"alpha": "ready", "beta": "ready"}


def test_truncated_to_zero_bytes_keeps_every_app(served: tuple[RouterServer, Path, str]) -> None:
    server, routes, text = served
    with _watching(server) as failures:
        routes.write_bytes(b"")  # truncated in place, and left so
        _wait_config_error(server, present=True)
        _assert_serving(server)
        error = _config_error(server)
        assert error is not None and EMPTY_MESSAGE in error and str(routes) in error
        routes.write_text(text)
        _wait_config_error(server, present=False)
    assert failures == [], server.log()
    _assert_serving(server)


def test_empty_file_renamed_into_place_keeps_every_app(served: tuple[RouterServer, Path, str]) -> None:
    server, routes, text = served
    with _watching(server) as failures:
        write_routes(routes, "# nothing here yet\n")  # atomic rename of an empty (comments only) file
        _wait_config_error(server, present=True)
        _assert_serving(server)
        write_routes(routes, text)
        _wait_config_error(server, present=False)
    assert failures == [], server.log()
    _assert_serving(server)


def test_truncate_then_write_never_drops_an_app(served: tuple[RouterServer, Path, str],
                                                sources: dict[str, str], router_cache_dir: Path) -> None:
    """An editor's save: truncate, then write in two steps. No request fails at any point."""
    server, routes, text = served
    # (The table is rebuilt only when something it routes changes, and this save changes nothing:
    # the reload shows in the reload log, not in the swap count.)
    def last_reload() -> float:
        recent = server.status()["recent_reloads"]  # latest first
        return float(recent[0]["at"]) if recent else 0.0

    before = last_reload()
    with _watching(server) as failures:
        with routes.open("w") as out:  # truncates
            out.flush()
            time.sleep(0.15)
            # Half-written: valid TOML that names only alpha. Read now, it would remove beta.
            out.write(_server_part(router_cache_dir) + _app_part("alpha", sources["alpha"]))
            out.flush()
            time.sleep(0.15)
            out.write(_app_part("beta", sources["beta"]))
        server.wait_for(lambda: last_reload() > before, WAIT_S, "the reload of the saved file")
        time.sleep(1.0)  # requests keep flowing after the swap too
    assert failures == [], server.log()
    assert _config_error(server) is None
    _assert_serving(server)
    assert routes.read_text() == text
