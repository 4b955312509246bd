"""In-process calls within one app, through Runtime.load_app + RunningApp.handle, with a Python
spin-sdk app (tests/fixtures/spin_py_chain): a sibling component over `http://<id>.spin.internal`
(private routes included), the app itself over a relative URL, Spin's allow-list rules, a call
loop, deadlines. Calls between apps go through the router: tests/test_e2e_chaining.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from registry.locked import Variable
from runtime import Runtime
from runtime.capabilities.outbound_http.in_process import MAX_CHAIN_DEPTH
from runtime.http.app import RunningApp
from runtime.testing import component, loaded_app
from runtime.types import AppSettings
from tests.support.fixtures import (
    FIXTURES_DIR,
    build_c_component,
    build_c_core_module,
    build_python_app,
    cache_root,
)
from tests.support.runtime_helpers import read, request

pytestmark = pytest.mark.slow

APP_SRC = FIXTURES_DIR / "spin_py_chain"
PRIVATE = {"private": True}


@pytest.fixture(scope="module")
def wasm() -> Path:
    return build_python_app(APP_SRC)


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(cache_root() / "runtime-spin")
    yield runtime
    runtime.close()


def chain_app(wasm: Path, **extra: Any) -> Any:
    """front (/front/...) may call any component and itself; back is private; side may call back
    and a component that does not exist; closed may call nothing; looper calls itself."""
    def comp(who: str, route: object, allowed: list[str], **more: str) -> Any:
        return component(who, wasm, route=route, config={"who": who, **more},
                         metadata={"allowed_outbound_hosts": allowed})

    return loaded_app(
        [
            comp("front", "/front/...", ["http://*.spin.internal", "http://self"]),
            comp("back", PRIVATE, []),
            comp("side", "/side/...", ["http://back.spin.internal", "http://ghost.spin.internal"]),
            comp("closed", "/closed/...", []),
            comp("looper", "/loop/...", ["http://*.spin.internal"], peer="http://looper.spin.internal"),
        ],
        name="chain",
        **extra,
    )


async def load(rt: Runtime, wasm: Path, timeout_s: float = 20.0) -> RunningApp:
    return await rt.load_app(chain_app(wasm), AppSettings(timeout_s=timeout_s))


async def get(running: RunningApp, path: str, **kwargs: Any) -> tuple[int, bytes]:
    response = await asyncio.wait_for(running.handle(request(path, **kwargs)), 60)
    return response.status, await asyncio.wait_for(read(response), 60)


async def call(running: RunningApp, via: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    status, body = await get(running, f"/{via}/call", query=f"url={quote(url, safe='')}", **kwargs)
    return status, json.loads(body) if status == 200 else body.decode()


async def threads_back(running: RunningApp) -> None:
    for _ in range(200):
        if running.threads.in_use == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{running.threads.in_use} worker threads still held")


async def test_a_component_calls_a_private_sibling_in_process(rt: Runtime, wasm: Path) -> None:
    running = await load(rt, wasm)
    # The private component is not routable...
    assert (await get(running, "/back/x"))[0] == 404
    # ...but its sibling reaches it, as Spin's synthetic route match: "/..." with the whole path.
    status, out = await call(running, "front", "http://back.spin.internal/hello/there%3Fx?q=1")
    assert status == 200 and out["status"] == 200
    echo = json.loads(out["body"])
    assert echo["who"] == "back" and echo["uri"] == "/hello/there%3Fx?q=1" and echo["method"] == "GET"
    headers = echo["headers"]
    assert headers["spin-path-info"] == "/hello/there%3Fx"
    assert headers["spin-full-url"] == "http://localhost/hello/there%3Fx?q=1"
    assert headers["spin-matched-route"] == "/..." and headers["spin-raw-component-route"] == "/..."
    assert headers["spin-component-route"] == "" and headers["spin-base-path"] == "/"
    assert headers["spin-client-addr"] == "0.0.0.0:0"
    assert headers["x-from"] == "front"
    assert "host" not in headers  # Spin drops the Host of a chained request
    assert "lepton-caller-app" not in headers  # the guest's forged one is removed
    await threads_back(running)


async def test_request_bodies_stream_to_the_sibling_and_back(rt: Runtime, wasm: Path) -> None:
    running = await load(rt, wasm)
    payload = bytes(range(256)) * 1200  # 300 KiB: more than the read-ahead, streamed
    status, out = await call(running, "front", "http://back.spin.internal/upload", body=payload)
    assert status == 200 and out["status"] == 200
    echo = json.loads(out["body"])
    assert echo["method"] == "POST" and echo["body_length"] == len(payload)
    assert echo["body_sha256"] == hashlib.sha256(payload).hexdigest()


async def test_self_requests_reach_the_apps_own_routes_in_process(rt: Runtime, wasm: Path) -> None:
    running = await load(rt, wasm)
    # Mounted under /shop: a relative URL goes where it would over a socket, the mount prefix
    # included, with the request's own Host.
    status, body = await get(running, "/shop/front/call", query="url=/side/who%3Fa=b", mount_prefix="/shop",
                             host="shop.test")
    assert status == 200, body
    out = json.loads(body)
    echo = json.loads(out["body"])
    assert out["status"] == 200 and echo["who"] == "side" and echo["uri"] == "/side/who?a=b"
    assert echo["headers"]["host"] == "shop.test"
    assert echo["headers"]["spin-base-path"] == "/shop"
    assert echo["headers"]["spin-full-url"] == "http://shop.test/shop/side/who?a=b"
    assert echo["headers"]["x-forwarded-prefix"] == "/shop"
    # A path no route serves: the app's own 404.
    status, out = await call(running, "front", "/nowhere")
    assert status == 200 and out["status"] == 404


async def test_calls_the_allow_list_does_not_allow_are_denied(rt: Runtime, wasm: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lepton.app")
    running = await load(rt, wasm)
    # No entry at all: denied, from a component and for a relative URL alike.
    assert await call(running, "closed", "http://back.spin.internal/") == (502, "ErrorCode_HttpRequestDenied")
    assert await call(running, "closed", "/front/") == (502, "ErrorCode_HttpRequestDenied")
    # An exact entry allows that component only, and no relative URL.
    status, out = await call(running, "side", "http://back.spin.internal/")
    assert status == 200 and json.loads(out["body"])["who"] == "back"
    assert await call(running, "side", "http://front.spin.internal/") == (502, "ErrorCode_HttpRequestDenied")
    assert await call(running, "side", "/front/") == (502, "ErrorCode_HttpRequestDenied")
    # `*.spin.internal` is expanded to the app's components, as Spin does: no other name.
    assert await call(running, "front", "http://ghost.spin.internal/") == (502, "ErrorCode_HttpRequestDenied")
    # An exact entry naming a component that does not exist passes the allow-list; there is no
    # such destination (Spin traps the caller; here it gets internal-error).
    assert await call(running, "side", "http://ghost.spin.internal/") == (502, "ErrorCode_InternalError")
    # Another app by name: not from a runtime without a host (and not allowed here anyway).
    assert await call(running, "front", "http://other.lepton.internal/") == (502, "ErrorCode_HttpRequestDenied")
    assert "outbound request to http://front.spin.internal/ refused: HTTP-request-denied" in caplog.text
    await threads_back(running)


async def test_a_call_loop_ends_with_loop_detected_and_gives_its_threads_back(rt: Runtime, wasm: Path) -> None:
    running = await load(rt, wasm)
    started = time.monotonic()
    status, body = await get(running, "/loop/bounce")
    # The guest at depth MAX_CHAIN_DEPTH gets loop-detected; every hop above it adds its "hop>".
    assert status == 508
    assert body.decode() == "hop>" * MAX_CHAIN_DEPTH + "ErrorCode_LoopDetected"
    assert time.monotonic() - started < 15
    await threads_back(running)
    # Several loops at once: each holds MAX_CHAIN_DEPTH + 1 threads at its deepest, together more
    # than the app's thread cap; they end (some with 503 or 504 for want of a thread), never hang.
    # A hop that finds no thread free within a second gets 503, which unwinds its chain.
    started = time.monotonic()
    results = await asyncio.gather(*(get(running, "/loop/bounce") for _ in range(3)))
    assert all(status in (503, 508) for status, _ in results), results
    assert time.monotonic() - started < 10
    await threads_back(running)
    status, _ = await get(running, "/front/ok")
    assert status == 200


async def test_the_callees_time_counts_against_the_callers_deadline(rt: Runtime, wasm: Path) -> None:
    running = await load(rt, wasm, timeout_s=2.0)
    started = time.monotonic()
    status, body = await get(running, "/front/call", query="url=http://back.spin.internal/sleep/20000")
    elapsed = time.monotonic() - started
    # The callee's deadline is the caller's: its 504 comes at the caller's deadline, which the
    # caller has either reached too (504) or not quite (it answers with the callee's 504).
    assert status == 504 or (status == 200 and json.loads(body)["status"] == 504), (status, body)
    assert elapsed < 4.5, elapsed
    await threads_back(running)  # the sleeping callee ended at the caller's deadline too
    assert (await get(running, "/front/ok"))[0] == 200


INBOUND_SRC = FIXTURES_DIR / "spin_c_inbound"


def inbound_component() -> Path:
    return build_c_component(INBOUND_SRC / "handler.c", world="spin-inbound", wit=INBOUND_SRC / "world.wit")


def spin1_module() -> Path:
    return build_c_core_module(INBOUND_SRC / "handler.c", exec_model="reactor", cflags=["-DSPIN1_MODULE"])


@pytest.mark.parametrize("build", [inbound_component, spin1_module], ids=["fermyon-spin-http", "spin1-module"])
async def test_the_buffered_spin_http_interface_calls_in_process_too(rt: Runtime, build: Any) -> None:
    # The C handler's /fetch?<url> sends a GET with fermyon:spin/http (or the Spin 1.x module's
    # wasi-outbound-http) and answers "upstream <status> <body>".
    wasm = build()

    def comp(id: str, route: object, allowed: list[str]) -> Any:
        return component(id, wasm, route=route, config={"greeting": "{{ greeting }}"},
                         metadata={"allowed_outbound_hosts": allowed, "key_value_stores": ["default"]})

    app = loaded_app(
        [comp("web", "/...", ["http://*.spin.internal", "http://self"]), comp("back", PRIVATE, [])],
        name="spin-http",
        variables={"greeting": Variable(default="hi")},
    )
    running = await rt.load_app(app, AppSettings(timeout_s=20.0))
    assert await get(running, "/fetch?http://back.spin.internal/config/greeting") == (200, b"upstream 200 hi")
    assert await get(running, "/fetch?/config/greeting") == (200, b"upstream 200 hi")
    assert await get(running, "/fetch?http://web.spin.internal/status/204") == (200, b"upstream 204 ")
    # destination-not-allowed (http-error 1): a name that is not a component of the app
    assert await get(running, "/fetch?http://nope.spin.internal/") == (502, b"http-error 1")
    await threads_back(running)


async def test_a_guest_that_sleeps_is_sent_off_the_event_loop_before_it_waits(
    rt: Runtime, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cheap component runs inline; the first time its guest waits (time.sleep: a wasi timer
    polled), the wait is refused before it starts, so the event loop is not held for it: the run
    is given up (not timed out: no strike) and runs again on a worker thread, for good."""
    import logging

    running = await load(rt, wasm)
    slot = running.slots["front"]
    assert slot.may_inline
    slot.recent = (0.0001,) * 4  # stand in for recent cheap runs
    with caplog.at_level(logging.INFO):
        assert await get(running, "/front/sleep/300") == (200, b"slept")
    assert not slot.may_inline and slot.inline_strikes == 0 and slot.inline_runs == 0
    assert any("inline run given up before a wait" in r.getMessage() for r in caplog.records)
