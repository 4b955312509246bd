"""A real Python spin-sdk 3.4.1 app using variables, key-value, sqlite and outbound HTTP, end to end
through Runtime.load_app + RunningApp.handle (tests/fixtures/spin_py_kv)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.locked import Variable
from runtime import AppLoadError, Runtime
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.fixtures import FIXTURES_DIR, build_python_app, cache_root
from tests.support.runtime_helpers import read, request
from tests.support.upstream import Upstream

pytestmark = pytest.mark.slow

APP_SRC = FIXTURES_DIR / "spin_py_kv"


@pytest.fixture(scope="module")
def wasm() -> Path:
    return build_python_app(APP_SRC)


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    # The precompiled cache outlives the test session: compiling this component takes seconds.
    runtime = Runtime(cache_root() / "runtime-spin")
    yield runtime
    runtime.close()


def kv_app(wasm: Path, upstream_port: int, **metadata: object) -> object:
    meta = {
        "key_value_stores": ["default"],
        "databases": ["default"],
        "allowed_outbound_hosts": [f"http://127.0.0.1:{upstream_port}"],
        **metadata,
    }
    return loaded_app(
        component(
            "web",
            wasm,
            metadata=meta,
            config={"greeting": "{{ greeting }}", "api_key": "{{ api_key }}", "both": "{{greeting}}-{{ api_key }}"},
        ),
        name="py-kv",
        variables={"greeting": Variable(default="hello"), "api_key": Variable(secret=True)},
    )


def settings(state_dir: Path, **variables: str) -> AppSettings:
    return AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, variables=variables, state_dir=state_dir)


async def get(running: object, path: str, **kwargs: object) -> tuple[int, bytes]:
    resp = await running.handle(request(path, **kwargs))  # type: ignore[attr-defined]
    return resp.status, await read(resp)


async def test_variables_key_value_sqlite_and_outbound(
    rt: Runtime, wasm: Path, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPIN_VARIABLE_API_KEY", "from-env")
    running = await rt.load_app(kv_app(wasm, upstream.port), settings(tmp_path, greeting="from-routes"))  # type: ignore[arg-type]

    # variables: routes.toml value, then environment
    assert await get(running, "/var/greeting") == (200, b"from-routes")
    assert await get(running, "/var/api_key") == (200, b"from-env")
    assert await get(running, "/var/both") == (200, b"from-routes-from-env")
    assert await get(running, "/var/nope") == (500, b"Error_Undefined")

    # key-value
    assert await get(running, "/kv/default/k1", method="PUT", body=b"v\x00\xff1") == (200, b"stored")
    assert await get(running, "/kv/default/k1") == (200, b"v\x00\xff1")
    assert await get(running, "/kv/default/missing") == (404, b"missing")
    assert await get(running, "/kv/default") == (200, b'["k1"]')
    # a label the component did not declare
    assert await get(running, "/kv/other/k1") == (403, b"Error_AccessDenied")

    # spin:sqlite@3.0.0
    assert await get(running, "/sql") == (200, b"1")
    assert await get(running, "/sql") == (200, b"2")

    # outbound HTTP to the allowed loopback upstream
    status, body = await get(running, "/out", query=f"url=http://127.0.0.1:{upstream.port}/up")
    assert (status, body) == (200, b"201 echo:")
    assert [r[1] for r in upstream.requests] == ["/up"]
    assert upstream.requests[0][2].get("x-from-guest") == "1"


async def test_denied_outbound_never_reaches_the_upstream(
    rt: Runtime, wasm: Path, upstream: Upstream, tmp_path: Path
) -> None:
    running = await rt.load_app(
        kv_app(wasm, upstream.port, allowed_outbound_hosts=["https://example.com"]),  # type: ignore[arg-type]
        settings(tmp_path, api_key="k"),
    )
    status, body = await get(running, "/out", query=f"url=http://127.0.0.1:{upstream.port}/secret")
    assert (status, body) == (502, b"ErrorCode_HttpRequestDenied")
    assert upstream.requests == [] and upstream.connections == 0


async def test_data_survives_restart_and_swap(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = await rt.load_app(kv_app(wasm, 1), settings(state, api_key="k"))  # type: ignore[arg-type]
    assert (await get(first, "/kv/default/durable", method="PUT", body=b"kept"))[0] == 200
    assert await get(first, "/sql") == (200, b"1")

    # Swap: a second version of the app loads while the first still serves; both see the data.
    second = await rt.load_app(kv_app(wasm, 1), settings(state, api_key="k"))  # type: ignore[arg-type]
    assert await get(second, "/kv/default/durable") == (200, b"kept")
    first.close()
    assert await get(second, "/sql") == (200, b"2")

    # Restart: a brand-new Runtime (another process would see the same files).
    other = Runtime(cache_root() / "runtime-spin")
    try:
        third = await other.load_app(kv_app(wasm, 1), settings(state, api_key="k"))  # type: ignore[arg-type]
        assert await get(third, "/kv/default/durable") == (200, b"kept")
        assert json.loads((await get(third, "/kv/default"))[1]) == ["durable"]
    finally:
        other.close()
    assert (state / "sqlite_key_value.db").is_file() and (state / "sqlite_db.db").is_file()


async def test_required_variable_missing_fails_the_load(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    with pytest.raises(AppLoadError) as err:
        await rt.load_app(kv_app(wasm, 1), settings(tmp_path))  # type: ignore[arg-type]
    assert "py-kv" in str(err.value) and "'api_key'" in str(err.value)


async def test_wasi_keyvalue_store_atomics_batch(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    running = await rt.load_app(kv_app(wasm, 1), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    status, body = await get(running, "/wkv")
    assert status == 200, body
    assert json.loads(body) == {
        "get_a": "1",
        "get_missing": None,
        "exists_a": True,
        "incr": [5, 3],
        "get_many": [["a", "1"], ["b", "2"]],  # missing keys are left out, as Spin's SQLite store
        "cas_current": "1",
        "after_swap": "swapped",
        "keys": ["a"],
        "cursor": "Error_Other",
    }
    assert await get(running, "/wkv/default") == (200, b"opened")
    assert await get(running, "/wkv/elsewhere") == (403, b"Error_AccessDenied")


async def test_wasi_config_store(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    running = await rt.load_app(kv_app(wasm, 1), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    assert await get(running, "/wcfg/greeting") == (200, b"hello")
    assert await get(running, "/wcfg/not_a_key") == (200, b"none")
    assert await get(running, "/wcfg/Invalid-Name") == (200, b"none")
    assert json.loads((await get(running, "/wcfg-all"))[1]) == [
        ["api_key", "k"], ["both", "hello-k"], ["greeting", "hello"]
    ]


async def test_fermyon_sqlite_v2(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    running = await rt.load_app(kv_app(wasm, 1), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    status, body = await get(running, "/sql2")
    assert status == 200, body
    assert json.loads(body) == {
        "columns": ["COUNT(*)", "'text'", "1.5", "x'00ff'", "NULL"],
        "values": ["Value_Integer:1", "Value_Text:'text'", "Value_Real:1.5", "Value_Blob:b'\\x00\\xff'",
                   "Value_Null:None"],
    }


async def test_unlisted_database_addresses_and_llm_return_their_errors(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    # The database interfaces refuse addresses outside allowed_outbound_hosts with their own
    # error case (tests/test_spin_databases.py covers them with real servers); llm has no backend.
    running = await rt.load_app(kv_app(wasm, 1), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    status, body = await get(running, "/unsupported")
    assert status == 200, body
    assert json.loads(body) == {
        "redis": "Error_InvalidAddress",
        "mqtt": "Error_ConnectionFailed",
        "mysql": "Error_ConnectionFailed",
        "postgres2": "Error_ConnectionFailed",
        "postgres3": "Error_ConnectionFailed",
        "llm": "Error_RuntimeError",
    }


async def test_outbound_post_streams_the_guest_body(rt: Runtime, wasm: Path, upstream: Upstream, tmp_path: Path) -> None:
    running = await rt.load_app(kv_app(wasm, upstream.port), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    payload = b"0123456789abcdef" * 6400  # 100 KiB, written by the guest after `handle`
    resp = await running.handle(
        request("/outpost", query=f"url=http://127.0.0.1:{upstream.port}/post", method="POST", body=payload)
    )
    assert resp.status == 200
    assert (await read(resp)).startswith(b"201 echo:")
    # The SDK calls `handle` before it writes the body, so this went through the streaming path.
    method, path, headers, received = upstream.requests[-1]
    assert (method, path, received, headers.get("content-length")) == ("POST", "/post", payload, "102400")


async def test_self_requests_reach_the_app_in_process(rt: Runtime, wasm: Path, upstream: Upstream, tmp_path: Path) -> None:
    # The upstream is what the inbound request's Host names: a self request used to go there over
    # a socket. Now the app's own routes serve it in process (tests/test_spin_chaining.py).
    host = f"127.0.0.1:{upstream.port}"
    allowed = await rt.load_app(
        kv_app(wasm, 1, allowed_outbound_hosts=["http://self"]), settings(tmp_path, api_key="k")  # type: ignore[arg-type]
    )
    resp = await allowed.handle(request("/apps/py/out", query="url=/var/greeting", host=host, mount_prefix="/apps/py"))
    assert (resp.status, await read(resp)) == (200, b"200 hello")
    assert upstream.requests == [] and upstream.connections == 0

    denied = await rt.load_app(kv_app(wasm, upstream.port), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    resp = await denied.handle(request("/out", query="url=/var/greeting", host=host))
    assert (resp.status, await read(resp)) == (502, b"ErrorCode_HttpRequestDenied")
    assert upstream.requests == []


async def test_outbound_large_response_streams_to_the_guest(
    rt: Runtime, wasm: Path, upstream: Upstream, tmp_path: Path
) -> None:
    running = await rt.load_app(kv_app(wasm, upstream.port), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    status, body = await get(running, "/out", query=f"url=http://127.0.0.1:{upstream.port}/big")
    assert status == 200
    assert body == b"201 " + b"x" * (1 << 20)


async def test_a_spin_sdk_app_runs_inline_until_it_calls_a_capability_that_may_wait(
    rt: Runtime, wasm: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK imports key-value, databases and outbound HTTP whatever the app uses, yet a cheap
    request that uses none of them runs inline on the event loop. The first call into one gives
    the inline run up before it does anything (the atomic increment happens once, not twice), the
    request runs again on a worker thread, and the component stays on worker threads."""
    import logging

    running = await rt.load_app(kv_app(wasm, 1), settings(tmp_path, api_key="k"))  # type: ignore[arg-type]
    neighbour = await rt.load_app(kv_app(wasm, 1), settings(tmp_path / "n", api_key="k"))  # type: ignore[arg-type]
    slot = running.slots["web"]  # type: ignore[attr-defined]
    assert slot.may_inline
    assert await get(running, "/nothing") == (404, b"no route")
    slot.recent = (0.0001,) * 4  # stand in for recent cheap runs (real timings vary with load)
    assert await get(running, "/nothing") == (404, b"no route")
    assert slot.inline_runs == 1 and slot.may_inline  # ran inline; it called nothing that waits
    slot.recent = (0.0001,) * 4
    with caplog.at_level(logging.INFO):
        assert await get(running, "/count/default/hits") == (200, b"1")
    assert any("which may wait or act outside the guest; it runs on worker threads from now on" in r.getMessage()
               for r in caplog.records)
    assert slot.inline_runs == 1 and not slot.may_inline
    slot.recent = (0.0001,) * 4
    assert not slot.inline_now()  # for good, however cheap its runs
    assert await get(running, "/count/default/hits") == (200, b"2")
    assert await get(neighbour, "/count/default/hits") == (200, b"1")
