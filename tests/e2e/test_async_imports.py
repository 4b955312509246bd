"""A component that imports component-model `async` functions (Spin 4's spin:redis/redis@3.0.0
here) cannot run on wasmtime-py, which defines only synchronous host functions. The app must be
refused at load with an error that names the import, while its neighbour serves; the same
component's synchronous neighbours in the linker report are unaffected."""

from __future__ import annotations

from pathlib import Path

import wasmtime
from wasmtime.component import Component

from tests.support.fixtures import FIXTURES_DIR, build_c_component
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer, hello_wasm, push_app_to, registry_routes

SRC = FIXTURES_DIR / "c_async_import"


def async_import_wasm() -> Path:
    return build_c_component(SRC / "handler.c", world="async-import", wit=SRC / "world.wit")


def test_link_report_names_every_async_function() -> None:
    from runtime.core.linking import build_linker
    from runtime.runtime import default_capabilities

    engine = wasmtime.Engine()
    component = Component.from_file(engine, str(async_import_wasm()))
    _, report = build_linker(engine, component, default_capabilities())
    assert sorted(report.async_funcs) == [
        "spin:redis/redis@3.0.0#[method]connection.get",
        "spin:redis/redis@3.0.0#[static]connection.open",
    ]
    assert "wasi:http/types@0.2.0" in report.provided  # the synchronous imports link as before


def test_app_with_async_imports_is_refused_by_name_and_the_neighbour_serves(  # type: ignore[no-untyped-def]
        router_server, registry: RegistryServer, tmp_path: Path, router_cache_dir: Path) -> None:
    refused = push_app_to(registry.host, "async/app:v1", async_import_wasm().read_bytes(), tmp_path)
    neighbour = push_app_to(registry.host, "async/neighbour:v1", hello_wasm("neighbour"), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(registry_routes(router_cache_dir, {"refused": (refused, "refused.test"), "neighbour": (neighbour, "n.test")}))
    server: RouterServer = router_server(routes)
    server.wait_ready(90)
    status = server.app_status("refused")
    assert status is not None and status["state"] == "failed", status
    error = status["error"]
    assert "component 'main', source: the component imports component-model async functions" in error, error
    assert "spin:redis/redis@3.0.0#[static]connection.open" in error, error
    assert "wasmtime-py" in error, error
    assert "type mismatch" not in error, error  # not wasmtime's own instantiation error
    assert server.get("/", host="refused.test").status_code == 404
    assert server.get("/", host="n.test").text == "neighbour      \n"
