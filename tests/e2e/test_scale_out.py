"""The scale-out shape of docs/how-to/scale-out.md: two `lepton-router serve` processes ("boxes"),
each with its own copy of the same routes.toml and runtime config (as a ConfigMap gives every pod
the same files) and so its own state dir, behind a real nginx round-robin, with a real redis-server.

A real Python spin-sdk app (tests/fixtures/spin_py_kv, `POST /count/default/KEY`: an atomic
wasi:keyvalue increment answering the new value) is served twice from the same registry
reference: `shared` keeps its key-value store in Redis, `local` has the default SQLite store.
Through nginx, `shared` answers one sequence 1..N across both boxes; `local` counts on each box
on its own. nginx's `X-Upstream` header (the box that answered) and each box's request counters
prove that both boxes served alternately.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

import registry as registry_module
from tests.support.db_servers import RedisServer
from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.nginx import nginx_for
from tests.support.registry_apps import AppComponent, write_local_app
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer

pytestmark = pytest.mark.slow

ROUNDS = 20  # requests per app through nginx, 10 per box


def _config_files(tmp_path: Path, reference: str, redis_url: str, cache_dir: Path) -> Path:
    """The deployment's files, written once (the ConfigMap); each box gets a copy."""
    config = tmp_path / "configmap"
    config.mkdir()
    (config / "runtime-config.toml").write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_url}"\n')
    (config / "routes.toml").write_text(
        # No state_dir: each box's state is `.lepton/state` next to its own copy of routes.toml.
        f'[server]\ncache_dir = "{cache_dir}"\n\n'
        f'[apps.shared]\nsource = "{reference}"\ninsecure = true\nhosts = ["shared.test"]\n'
        'runtime_config = "runtime-config.toml"\n\n'
        f'[apps.local]\nsource = "{reference}"\ninsecure = true\nhosts = ["local.test"]\n'
    )
    return config


def _count(client: httpx.Client, url: str, host: str) -> tuple[str, int]:
    """One increment through nginx: (the box that answered, the counter's new value)."""
    response = client.post(f"{url}/count/default/hits", headers={"host": host})
    assert response.status_code == 200, (response.status_code, response.text)
    return response.headers["x-upstream"], int(response.text)


def test_two_boxes_behind_nginx_share_a_redis_counter(
    registry: RegistryServer, router_server: Any, tmp_path: Path, router_cache_dir: Path, redis_server: RedisServer
) -> None:
    wasm = build_python_app(FIXTURES_DIR / "spin_py_kv").read_bytes()
    component = AppComponent(id="web", wasm=wasm, extra={"metadata": {"key_value_stores": ["default"]}})
    lock = write_local_app(tmp_path / "app", [component], name="py-kv", version="1.0.0")
    reference = f"{registry.host}/scale/py-kv:1.0.0"
    registry_module.push_app(lock, reference, insecure=True)
    redis: Any = redis_server.client()
    redis.flushall()

    config = _config_files(tmp_path, reference, redis_server.url, router_cache_dir)
    boxes: list[RouterServer] = []
    for name in ("box-a", "box-b"):
        shutil.copytree(config, tmp_path / name)
        # One after the other: the second box finds the app pulled and compiled in the shared cache.
        # Readiness as a load balancer's probe sees it: /.well-known/lepton/ready on each box.
        boxes.append(router_server(tmp_path / name / "routes.toml").wait_ready())
    upstreams = {f"127.0.0.1:{box.port}": box for box in boxes}

    with nginx_for(tmp_path / "nginx", [box.port for box in boxes]) as nginx, httpx.Client(timeout=30) as client:
        # Redis: one sequence across the boxes, served alternately (sequential requests, one nginx
        # worker: round-robin takes turns).
        shared = [_count(client, nginx.base_url, "shared.test") for _ in range(ROUNDS)]
        assert [value for _, value in shared] == list(range(1, ROUNDS + 1)), shared
        assert {box for box, _ in shared} == set(upstreams), shared
        assert all(a != b for (a, _), (b, _) in itertools.pairwise(shared)), shared
        for box in boxes:  # (a box counts a request once its response is sent: wait for the last)
            box.wait_for(lambda box=box: box.app_status("shared")["requests"] == ROUNDS // 2, 10,
                         f"{ROUNDS // 2} requests counted by the box on port {box.port}")
        assert redis.get("lepton:shared:default:hits") == str(ROUNDS).encode()

        # SQLite (the default store): each box has its own counter in its own state dir.
        local = [_count(client, nginx.base_url, "local.test") for _ in range(ROUNDS)]
        per_box = {box: [value for answered, value in local if answered == box] for box in upstreams}
        assert all(values == list(range(1, ROUNDS // 2 + 1)) for values in per_box.values()), local
        assert len({value for _, value in local}) == ROUNDS // 2  # every value was answered twice
        for name in ("box-a", "box-b"):
            assert (tmp_path / name / ".lepton" / "state" / "local" / "sqlite_key_value.db").is_file()
            assert not (tmp_path / name / ".lepton" / "state" / "shared" / "sqlite_key_value.db").exists()
        assert redis.keys("*") == [b"lepton:shared:default:hits"]  # nothing of `local` in Redis

        # A box goes away: nginx sends everything to the other one, and the shared sequence goes on.
        # ($upstream_addr lists every box nginx tried: "dead, alive" when it retried the refused one.)
        boxes[1].stop()
        after = [_count(client, nginx.base_url, "shared.test") for _ in range(4)]
        assert [value for _, value in after] == list(range(ROUNDS + 1, ROUNDS + 5)), after
        assert all(tried.split(", ")[-1] == f"127.0.0.1:{boxes[0].port}" for tried, _ in after), after
        # The remaining box's own counter goes on where it was, untouched by the other box's.
        assert _count(client, nginx.base_url, "local.test")[1] == ROUNDS // 2 + 1
