"""A real JS app (@spinframework/build-tools j2w) using fermyon:spin variables and key-value
(tests/fixtures/spin_js_kv), end to end through Runtime.load_app + RunningApp.handle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.locked import Variable
from runtime import Runtime
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.fixtures import FIXTURES_DIR, build_js_app, cache_root
from tests.support.runtime_helpers import read, request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(cache_root() / "runtime-spin")
    yield runtime
    runtime.close()


async def call(running: object, path: str, **kwargs: object) -> tuple[int, bytes]:
    resp = await running.handle(request(path, **kwargs))  # type: ignore[attr-defined]
    return resp.status, await read(resp)


async def test_js_variables_and_key_value(rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIN_VARIABLE_TOKEN", "env-token")
    app = loaded_app(
        component(
            "js",
            build_js_app(FIXTURES_DIR / "spin_js_kv"),
            config={"message": "{{ greeting }}, world", "token": "{{ token }}"},
            metadata={"key_value_stores": ["default", "cache"]},
        ),
        name="js-kv",
        variables={"greeting": Variable(default="hello"), "token": Variable(secret=True)},
    )
    running = await rt.load_app(app, AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, state_dir=tmp_path))
    assert await call(running, "/var/message") == (200, b"hello, world")
    assert await call(running, "/var/token") == (200, b"env-token")
    assert await call(running, "/var/greeting") == (500, b"undefined")  # not a config key
    assert await call(running, "/var/Bad") == (500, b"invalid-name")

    assert await call(running, "/kv/cache/a", method="PUT", body=b"1") == (200, b"stored")
    assert await call(running, "/kv/default/b", method="PUT", body=b"2") == (200, b"stored")
    assert await call(running, "/kv/cache/a") == (200, b"1")
    assert await call(running, "/kv/cache") == (200, b'["a"]')
    assert await call(running, "/kv/default/a") == (404, b"missing")
    assert await call(running, "/kv/secret/a") == (403, b"access-denied")
