"""Fresh instances made ahead of their request (LEPTON_SPARE_INSTANCES) through `lepton-router
serve`: every request still starts from a fresh instance, across a hot swap, and the other apps
are untouched. The WAT guest's /count answers how many /count requests its instance has served.
(That spares are actually taken is checked in tests/runtime/test_spares.py.)"""

from __future__ import annotations

from pathlib import Path

from tests.support.server import RouterServer, echo_wasm, push_app_to, registry_routes, write_routes


def _routes(cache: Path, guest: str, timeout: str = "10s") -> str:
    apps = {"fresh": (guest, "fresh.test"), "neighbour": (guest, "neighbour.test")}
    return registry_routes(cache, apps, defaults=f'timeout = "{timeout}"\n')


def _count(server: RouterServer, host: str) -> int:
    response = server.get("/count", host=host)
    assert response.status_code == 200
    return int(response.headers["x-count"])


def test_requests_served_from_spares_start_fresh_across_a_swap(registry, router_server,  # type: ignore[no-untyped-def]
                                                               router_cache_dir: Path, tmp_path: Path) -> None:
    guest = push_app_to(registry.host, "spares/guest:v1", echo_wasm(), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(router_cache_dir, guest))
    server: RouterServer = router_server(routes, env={"LEPTON_SPARE_INSTANCES": "1"})
    server.wait_ready()

    assert [_count(server, "fresh.test") for _ in range(30)] == [1] * 30

    version = server.app_status("fresh")["version"]  # type: ignore[index]
    write_routes(routes, _routes(router_cache_dir, guest, timeout="9s"))
    server.wait_for(lambda: (server.app_status("fresh") or {}).get("version") != version, 60, "fresh swapped")
    assert [_count(server, "fresh.test") for _ in range(10)] == [1] * 10
    assert [_count(server, "neighbour.test") for _ in range(3)] == [1] * 3
    assert "no instances made ahead" not in server.log()
