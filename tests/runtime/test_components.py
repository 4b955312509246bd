"""runtime/ with real components built from our sources: C (wasi:http, files), Python, JS."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from runtime import Runtime
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support import fixtures
from tests.support.runtime_helpers import header, read, request

SETTINGS = AppSettings(timeout_s=5.0, memory_bytes=128 * MiB, max_body_bytes=8 * MiB)


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    # Persistent precompiled cache: the Python/JS components take seconds to compile (the cold
    # path is covered by test_runtime_wat's cache test).
    runtime = Runtime(fixtures.cache_root() / "runtime")
    yield runtime
    runtime.close()


# -- C wasi:http component (preview1 adapter: imports wasi @0.2.x from the adapter) ----------------
async def test_c_hello_env_log_and_faults(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    wasm = fixtures.build_c_http_hello()
    running = await rt.load_app(
        loaded_app([component("c", wasm, env={"GREETING": "hi there"})], name="c-app"),
        AppSettings(timeout_s=1.0, memory_bytes=64 * MiB),
    )
    resp = await running.handle(request("/x", query="q=1"))
    assert resp.status == 200
    assert header(resp, "x-lepton-path-with-query") == "/x?q=1"
    assert await read(resp) == b"hello from C: GET /x?q=1\n"
    env = await running.handle(request("/env/GREETING"))
    assert (env.status, await read(env)) == (200, b"hi there")
    assert (await running.handle(request("/env/NOPE"))).status == 404

    with caplog.at_level(logging.INFO, logger="lepton.guest"):
        assert (await running.handle(request("/log"))).status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "lepton.guest"]
    assert "[c-app/c] c-hello stdout line" in lines
    assert "[c-app/c] c-hello stderr line" in lines

    assert (await running.handle(request("/trap"))).status == 500
    assert (await running.handle(request("/loop"))).status == 504
    # (/alloc/N is not used: clang drops the fixture's unused malloc+memset, so it allocates nothing.)


async def test_c_streams_and_echoes(rt: Runtime) -> None:
    running = await rt.load_app(loaded_app([component("c", fixtures.build_c_http_hello())]), SETTINGS)
    data = bytes(range(256)) * 4096  # 1 MiB
    resp = await running.handle(request("/echo", body=data))
    assert await read(resp) == data
    resp = await running.handle(request("/stream/20"))
    body = await read(resp)
    assert body == b"".join(bytes([i % 256]) * 65536 for i in range(20))


# -- C component reading its files mount -------------------------------------------------------------
async def test_c_files_read_only_mount_and_no_escape(rt: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "hello.txt").write_text("hello from a static file\n")
    (mount / "sub").mkdir()
    (mount / "sub" / "nested.txt").write_text("nested\n")
    (mount / "link").symlink_to(secret)  # a symlink leading out of the mount
    running = await rt.load_app(
        loaded_app([component("files", fixtures.build_c_files(), files_dir=mount)], name="files"), SETTINGS
    )
    resp = await running.handle(request("/hello.txt"))
    assert (resp.status, await read(resp)) == (200, b"hello from a static file\n")
    resp = await running.handle(request("/sub/nested.txt"))
    assert (resp.status, await read(resp)) == (200, b"nested\n")
    assert (await running.handle(request("/missing.txt"))).status == 404
    for escape in ("/%2e%2e/secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/link"):
        resp = await running.handle(request(escape))
        body = await read(resp)
        assert resp.status in (403, 404), (escape, resp.status, body)
        assert b"do not serve me" not in body


# -- Python spin-sdk and JS (j2w) echo apps ---------------------------------------------------------
@pytest.mark.slow
async def test_python_echo(rt: Runtime) -> None:
    running = await rt.load_app(loaded_app([component("py", fixtures.build_python_echo())], name="py"), SETTINGS)
    resp = await running.handle(request("/py/echo", query="a=b", body=b'{"k": 1}', headers=[("x-test", "yes")]))
    assert resp.status == 200
    echo = json.loads(await read(resp))
    assert echo["method"] == "POST"
    assert echo["uri"] == "/py/echo?a=b"
    assert echo["body"] == '{"k": 1}'
    headers = {k.lower(): v for k, v in (echo["headers"].items() if isinstance(echo["headers"], dict) else echo["headers"])}
    assert headers["x-test"] == "yes"
    assert headers["spin-full-url"] == "http://example.com/py/echo?a=b"
    data = bytes(range(256)) * 4096
    raw = await running.handle(request("/raw", body=data, headers=[("x-echo", "raw")]))
    assert await read(raw) == data

    # This app reads the whole body before answering: a streamed body over the limit is a 413.
    small = await rt.load_app(
        loaded_app([component("py", fixtures.build_python_echo())], name="py"),
        AppSettings(timeout_s=5.0, memory_bytes=128 * MiB, max_body_bytes=100_000),
    )

    async def unannounced() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"z" * 65536

    assert (await small.handle(request("/raw", chunks=unannounced()))).status == 413


@pytest.mark.slow
async def test_js_echo(rt: Runtime) -> None:
    running = await rt.load_app(loaded_app([component("js", fixtures.build_js_echo())], name="js"), SETTINGS)
    for i in range(3):  # StarlingMonkey cannot serve twice on one instance: fresh instances each time
        resp = await running.handle(request(f"/js/{i}", query="x=1", body=f"body {i}".encode()))
        assert resp.status == 200
        echo = json.loads(await read(resp))
        assert echo["method"] == "POST"
        assert echo["uri"].endswith(f"/js/{i}?x=1")
        assert echo["body"] == f"body {i}"
