"""Hot swap under load: v1 -> v2, add and remove apps, one invalid edit; zero failed requests."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.server import RouterServer, push_app_to, push_hellos, write_routes

V1 = "swap v1        \n"
V2 = "swap v2        \n"
MAX_REQUESTS_PER_CLIENT = 4000  # bound: the loop ends even if the swap never happens
AFTER_SWAP = 25  # requests each client must see on v2 before the loop stops


def _routes(cache: Path, apps: dict[str, tuple[str, str]]) -> str:
    text = f'[server]\ncache_dir = "{cache}"\n'
    for name, (source, host) in apps.items():
        text += f'\n[apps.{name}]\nsource = "{source}"\ninsecure = true\nhosts = ["{host}"]\n'
    return text


class Client(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers={"host": "main.test"}, timeout=30) as client:
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if self.stop.is_set():
                    return
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200 or response.text not in (V1, V2):
                    self.failures.append(f"{response.status_code} {response.text!r}")
                self.bodies.append(response.text)
                if self.bodies[-AFTER_SWAP:] == [V2] * AFTER_SWAP:
                    return

    def switches(self) -> int:
        return sum(1 for a, b in zip(self.bodies, self.bodies[1:], strict=False) if a != b)


@pytest.fixture(scope="module")
def sources(registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return push_hellos(registry.host, tmp_path_factory.mktemp("swap-apps"), {
        "v1": ("swap/main:v1", "swap v1"),
        "v2": ("swap/main:v2", "swap v2"),
        "gone": ("swap/gone:v1", "gone"),
        "fresh": ("swap/fresh:v1", "fresh"),
    })


def test_hot_swap_under_load(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                             router_cache_dir: Path) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(router_cache_dir, {"main": (sources["v1"], "main.test"),
                                                 "gone": (sources["gone"], "gone.test"),
                                                 "steady": (sources["fresh"], "steady.test")}))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    assert server.get("/", host="gone.test").text == "gone           \n"
    steady_version = server.app_status("steady")["version"]  # type: ignore[index]

    clients = [Client(server.base_url + "/") for _ in range(4)]
    for client in clients:
        client.start()
    server.wait_for(lambda: all(len(c.bodies) >= 20 for c in clients), 60, "clients running on v1")
    reloads_before = server.status()["reloads"]

    # 1. An invalid edit is rejected and changes nothing.
    write_routes(routes, routes.read_text() + '\n[apps.broken]\nsource = "x"\nprefix = "no-slash"\n')
    server.wait_for(lambda: server.status()["config_error"] is not None, 30, "the invalid edit to be rejected")
    status = server.status()
    assert f"{routes}:" in status["config_error"] and "app 'broken': field 'prefix'" in status["config_error"]
    assert status["reloads"] == reloads_before
    assert server.get("/", host="gone.test").status_code == 200
    counts = [len(c.bodies) for c in clients]
    server.wait_for(lambda: all(len(c.bodies) >= n + 10 for c, n in zip(clients, counts, strict=True)), 60,
                    "more requests after the invalid edit")
    assert all(set(c.bodies) == {V1} for c in clients)

    # 2. v1 -> v2, remove one app, add another (each load joins the table when it is done).
    write_routes(routes, _routes(router_cache_dir, {"main": (sources["v2"], "main.test"),
                                                    "fresh": (sources["fresh"], "fresh.test"),
                                                    "steady": (sources["fresh"], "steady.test")}))
    for client in clients:
        client.join(timeout=120)
    for client in clients:
        client.stop.set()
        client.join(timeout=10)

    for i, client in enumerate(clients):
        assert client.failures == [], f"client {i}: {client.failures[:5]}\n{server.log()}"
        assert client.bodies[0] == V1 and client.bodies[-1] == V2, f"client {i} never switched"
        assert client.switches() == 1, f"client {i} switched {client.switches()} times"
    assert server.get("/", host="gone.test").status_code == 404
    assert server.get("/", host="fresh.test").text == "fresh          \n"
    status = server.status()
    assert status["config_error"] is None
    assert {a["name"]: a["state"] for a in status["apps"]} == {"main": "ready", "fresh": "ready", "steady": "ready"}
    assert server.app_status("steady")["version"] == steady_version  # unchanged apps are not reloaded
    assert "released gone" in server.log()


def test_sighup_reloads_when_watching_is_off(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                             router_cache_dir: Path) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(router_cache_dir, {"main": (sources["v1"], "main.test")}))
    server: RouterServer = router_server(routes, extra_args=["--no-watch"])
    server.wait_ready()
    write_routes(routes, _routes(router_cache_dir, {"main": (sources["v2"], "main.test")}))
    reloads = server.status()["reloads"]
    assert server.get("/", host="main.test").text == V1
    server.signal(signal.SIGHUP)
    server.wait_for(lambda: server.get("/", host="main.test").text == V2, 60, "SIGHUP reload to v2")
    assert server.status()["reloads"] == reloads + 1


def test_failed_load_keeps_old_version_and_does_not_block_others(router_server, sources: dict[str, str],  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path, router_cache_dir: Path,
                                                                 registry) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(router_cache_dir, {"main": (sources["v1"], "main.test")}))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    missing = f"{registry.host}/swap/missing:v9"
    write_routes(routes, _routes(router_cache_dir, {"main": (missing, "main.test"),
                                                    "newbad": (missing, "newbad.test"),
                                                    "fresh": (sources["fresh"], "fresh.test")}))
    server.wait_for(lambda: server.get("/", host="fresh.test").status_code == 200, 60, "fresh app served")
    # Loads join independently: wait for both failures to be reported too.
    server.wait_for(lambda: server.app_status("newbad")["state"] == "failed"  # type: ignore[index]
                    and server.app_status("main")["error"] is not None, 60, "the failed loads")  # type: ignore[index]
    assert server.get("/", host="main.test").text == V1  # old version keeps serving
    assert server.get("/", host="newbad.test").status_code == 404
    apps = {a["name"]: a for a in server.status()["apps"]}
    assert apps["main"]["state"] == "ready" and "swap/missing" in apps["main"]["error"]
    assert apps["newbad"]["state"] == "failed" and apps["newbad"]["error"]
    # A failed app does not make the instance unready (issue 11): the others serve.
    ready = server.get("/.well-known/lepton/ready")
    assert ready.status_code == 200 and ready.json()["apps"] == {"failed": 1, "ready": 2}


def test_in_flight_request_finishes_on_old_version_then_it_is_released(router_server, registry,  # type: ignore[no-untyped-def]
                                                                        tmp_path: Path, router_cache_dir: Path) -> None:
    import threading

    from tests.support.server import echo_wasm

    # v1 routes everything; v2 only /x/..., so GET /y tells the versions apart (200 vs the app's 404).
    v1 = push_app_to(registry.host, "inflight/echo:v1", echo_wasm(), tmp_path, route="/...")
    v2 = push_app_to(registry.host, "inflight/echo:v2", echo_wasm(), tmp_path, route="/x/...")
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(router_cache_dir, {"echo": (v1, "echo.test")}))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    v1_digest = server.app_status("echo")["version"]["digest"]  # type: ignore[index]
    assert server.get("/y", host="echo.test").status_code == 200

    release = threading.Event()
    result: dict[str, httpx.Response] = {}

    def slow_body():  # type: ignore[no-untyped-def]
        yield b"started on v1, "
        release.wait(60)
        yield b"finished after the swap"

    def upload() -> None:
        result["r"] = httpx.post(f"{server.base_url}/x/up", content=slow_body(), headers={"host": "echo.test"},
                                 timeout=90)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        server.wait_for(lambda: server.app_status("echo")["inflight"] == 1, 30, "upload in flight")  # type: ignore[index]
        write_routes(routes, _routes(router_cache_dir, {"echo": (v2, "echo.test")}))
        server.wait_for(lambda: server.get("/y", host="echo.test").status_code == 404, 60, "v2 serving")
        assert server.app_status("echo")["version"]["digest"] != v1_digest  # type: ignore[index]
        assert f"released echo ({v1_digest})" not in server.log()  # still serving the upload
    finally:
        release.set()
        thread.join(timeout=90)
    assert result["r"].status_code == 200
    assert result["r"].content == b"started on v1, finished after the swap"
    server.wait_for(lambda: f"released echo ({v1_digest})" in server.log(), 30, "v1 released after its last request")


def test_symlinked_routes_file_configmap_style(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                               router_cache_dir: Path) -> None:
    """routes.toml -> ..data/routes.toml, updated by atomically swapping the ..data link (Kubernetes)."""
    import os

    conf = tmp_path / "conf"
    (conf / "..v1").mkdir(parents=True)
    (conf / "..v1" / "routes.toml").write_text(_routes(router_cache_dir, {"main": (sources["v1"], "main.test")}))
    (conf / "..data").symlink_to("..v1")
    (conf / "routes.toml").symlink_to("..data/routes.toml")
    server: RouterServer = router_server(conf / "routes.toml")
    server.wait_ready()
    assert server.get("/", host="main.test").text == V1

    (conf / "..v2").mkdir()
    (conf / "..v2" / "routes.toml").write_text(_routes(router_cache_dir, {"main": (sources["v2"], "main.test")}))
    (conf / "..data_tmp").symlink_to("..v2")
    os.replace(conf / "..data_tmp", conf / "..data")
    server.wait_for(lambda: server.get("/", host="main.test").text == V2, 60, "reload through the swapped link")
