"""A runtime config's `[outbound_networking] block_networks` and `[[variables_provider]]` through
`lepton-router serve`, with real Python spin-sdk apps pulled from a registry:

- an app whose runtime config blocks 127.0.0.0/8 and ::1 opens no connection to a real HTTP
  upstream (reached by the name `localhost`: checked after DNS), Redis, PostgreSQL, MariaDB or
  Mosquitto on 127.0.0.1, as each server's own connection count proves, and gets each
  interface's error; a neighbour app without the block reaches every one of them;
- an app with an env provider (`prefix`, `dotenv_path`) reads its variables in Spin's order:
  routes.toml first, then its provider's environment, then its dotenv file, then
  SPIN_VARIABLE_*, then the default; an edit of the dotenv file alone reloads it; a neighbour
  without the provider sees none of the prefixed variables.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import registry as registry_module
from tests.support.db_apps import db_wasm
from tests.support.db_servers import MariaDbServer, MosquittoBroker, PostgresServer, RedisServer
from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.registry_apps import AppComponent, write_local_app
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer
from tests.support.upstream import Upstream

pytestmark = pytest.mark.slow


def _push(registry: RegistryServer, work: Path, name: str, component: AppComponent,
          variables: dict[str, Any] | None = None) -> str:
    lock = write_local_app(work / name, [component], name=name, version="1.0.0")
    if variables:
        doc = json.loads(lock.read_text())
        doc["variables"] = variables
        lock.write_text(json.dumps(doc))
    reference = f"{registry.host}/spin/{name}:1.0.0"
    registry_module.push_app(lock, reference, insecure=True)
    return reference


def _app(name: str, reference: str, extra: str = "") -> str:
    return f'\n[apps.{name}]\nsource = "{reference}"\ninsecure = true\nprefix = "/{name}"\ntimeout = "10s"\n{extra}'


def test_block_networks_opens_no_connection_and_leaves_the_neighbour_alone(
    registry: RegistryServer, router_server: Any, tmp_path: Path, router_cache_dir: Path, upstream: Upstream,
    redis_server: RedisServer, postgres_server: PostgresServer, mariadb_server: MariaDbServer,
    mqtt_broker: MosquittoBroker,
) -> None:
    servers = {
        "redis": redis_server.url,
        "pg4": postgres_server.url,
        "mysql": mariadb_server.url,
        "mqtt": f"mqtt://127.0.0.1:{mqtt_broker.port}?client_id=blocked-test",
    }
    allowed = [f"redis://127.0.0.1:{redis_server.port}", f"postgres://127.0.0.1:{postgres_server.port}",
               f"mysql://127.0.0.1:{mariadb_server.port}", f"mqtt://127.0.0.1:{mqtt_broker.port}"]
    db = _push(registry, tmp_path, "db", AppComponent(
        id="web", wasm=db_wasm().read_bytes(), extra={"metadata": {"allowed_outbound_hosts": allowed}}))
    http_allowed = [f"http://localhost:{upstream.port}", f"http://127.0.0.1:{upstream.port}"]
    web = _push(registry, tmp_path, "web", AppComponent(
        id="web", wasm=build_python_app(FIXTURES_DIR / "spin_py_chain").read_bytes(),
        extra={"config": {"who": "web"}, "metadata": {"allowed_outbound_hosts": http_allowed}}))
    (tmp_path / "blocked.toml").write_text('[outbound_networking]\nblock_networks = ["127.0.0.0/8", "::1/128"]\n')
    routes = tmp_path / "routes.toml"
    blocked = 'runtime_config = "blocked.toml"\n'
    routes.write_text(
        f'[server]\ncache_dir = "{router_cache_dir}"\nstate_dir = "{tmp_path / "state"}"\n'
        + _app("dbblocked", db, blocked) + _app("dbopen", db)
        + _app("webblocked", web, blocked) + _app("webopen", web)
    )
    server: RouterServer = router_server(routes)
    server.wait_ready()

    def counts() -> dict[str, int]:
        return {
            "http": upstream.connections,
            "redis": redis_server.connections_received(),
            "pg4": postgres_server.connections(),
            "mysql": mariadb_server.connections(),
            "mqtt": mqtt_broker.connections(),
        }

    before = counts()
    for kind, address in servers.items():
        path = "/dbblocked/mqtt" if kind == "mqtt" else f"/dbblocked/open/{kind}"
        params = {"addr": address, "topic": "t"}
        denied = server.get(path, params=params)
        assert denied.status_code == 500, (kind, denied.text, server.log())
        error = json.loads(denied.text)
        assert "prohibited by runtime config" in json.dumps(error["value"]), (kind, error)
    denied = server.get("/webblocked/call", params={"url": f"http://localhost:{upstream.port}/x"})
    assert (denied.status_code, denied.text) == (502, "ErrorCode_DestinationIpProhibited"), server.log()
    denied = server.get("/webblocked/call", params={"url": f"http://127.0.0.1:{upstream.port}/x"})
    assert (denied.status_code, denied.text) == (502, "ErrorCode_DestinationIpProhibited"), server.log()
    assert counts() == before  # not one connection reached any server

    # The neighbour, same component without the runtime config, reaches every one of them.
    for kind, address in servers.items():
        path = "/dbopen/mqtt" if kind == "mqtt" else f"/dbopen/open/{kind}"
        opened = server.get(path, params={"addr": address, "topic": "t"})
        assert opened.status_code == 200, (kind, opened.text, server.log())
    called = server.get("/webopen/call", params={"url": f"http://localhost:{upstream.port}/x"})
    assert called.status_code == 200 and json.loads(called.text)["body"] == "echo:", called.text
    after = counts()
    assert all(after[k] > before[k] for k in after), (before, after)

    # The blocked apps still serve; a blocked call costs nothing lasting.
    assert server.get("/dbblocked/noop").text == "ok"
    denied = server.get("/webblocked/call", params={"url": f"http://localhost:{upstream.port}/x"})
    assert denied.text == "ErrorCode_DestinationIpProhibited"
    assert upstream.connections == after["http"]


def test_env_variables_provider_order_and_dotenv_reload(
    registry: RegistryServer, router_server: Any, tmp_path: Path, router_cache_dir: Path
) -> None:
    names = ["from_routes", "from_env", "from_dotenv", "from_spin", "defaulted"]
    template = "|".join(f"{n}={{{{ {n} }}}}" for n in names)
    variables = {n: {"default": f"default-{n}"} for n in names}
    wasm = build_python_app(FIXTURES_DIR / "spin_py_chain").read_bytes()
    reference = _push(registry, tmp_path, "vars", AppComponent(id="web", wasm=wasm, extra={"config": {"who": template}}),
                      variables)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "shop.env").write_text("SHOP_FROM_DOTENV=dotenv-value\nSHOP_FROM_ENV=dotenv-loses\n")
    (conf / "shop.toml").write_text(
        '[[variables_provider]]\ntype = "env"\nprefix = "SHOP"\ndotenv_path = "shop.env"\n'
    )
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[server]\ncache_dir = "{router_cache_dir}"\nstate_dir = "{tmp_path / "state"}"\n'
        + _app("shop", reference, 'runtime_config = "conf/shop.toml"\nvariables = { from_routes = "routes-value" }\n')
        + _app("plain", reference)
    )
    env = {
        "SHOP_FROM_ROUTES": "env-loses", "SHOP_FROM_ENV": "env-value",
        "SPIN_VARIABLE_FROM_SPIN": "spin-value", "SPIN_VARIABLE_FROM_ENV": "spin-loses",
    }
    server: RouterServer = router_server(routes, env=env)
    server.wait_ready()

    def seen(app: str) -> dict[str, str]:
        response = server.get(f"/{app}/echo")
        assert response.status_code == 200, server.log()
        return dict(part.split("=", 1) for part in json.loads(response.text)["who"].split("|"))

    assert seen("shop") == {
        "from_routes": "routes-value", "from_env": "env-value", "from_dotenv": "dotenv-value",
        "from_spin": "spin-value", "defaulted": "default-defaulted",
    }
    # The neighbour has no provider: only SPIN_VARIABLE_* and defaults, never the SHOP_ variables.
    assert seen("plain") == {
        "from_routes": "default-from_routes", "from_env": "spin-loses", "from_dotenv": "default-from_dotenv",
        "from_spin": "spin-value", "defaulted": "default-defaulted",
    }
    assert "dotenv-value" not in server.log() and "env-value" not in server.log()

    # The dotenv file is watched: an edit of it alone reloads the app that reads it. (The watch
    # of a directory that the first load named starts within a second of it: wait that out.)
    time.sleep(2)
    (conf / "shop.env").write_text("SHOP_FROM_DOTENV=edited\n")
    server.wait_for(lambda: seen("shop")["from_dotenv"] == "edited", 120, "shop reloaded after the dotenv edit")
    assert seen("plain")["from_dotenv"] == "default-from_dotenv"
