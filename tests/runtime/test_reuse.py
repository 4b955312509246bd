"""Opt-in instance reuse (max_instance_reuse_count / idle_instance_timeout) on the WAT guest, whose
/count answers how many /count requests its instance has served (x-count)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest

from runtime import Runtime
from runtime.http.app import RunningApp
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.runtime_helpers import GUEST_WAT, instance_count, request

FRESH = AppSettings(timeout_s=1.0, memory_bytes=32 * MiB)
REUSE3 = dataclasses.replace(FRESH, max_instance_reuse_count=3, idle_instance_timeout_s=30.0)


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path_factory.mktemp("rtcache"))
    yield runtime
    runtime.close()


async def _load(rt: Runtime, settings: AppSettings, name: str = "reuse") -> RunningApp:
    return await rt.load_app(loaded_app([component("guest", GUEST_WAT)], name=name), settings)


async def _settled(running: RunningApp) -> None:
    """Until no run of the app is in flight: a worker thread hands its instance back just after
    the response ends, and these tests send their next request only then, as a client would."""
    for _ in range(200):
        if running.threads.in_use == 0:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("a run did not end")


async def _count(running: RunningApp) -> int:
    count = await instance_count(running)
    await _settled(running)
    return count


async def test_fresh_instance_per_request_by_default(rt: Runtime) -> None:
    running = await _load(rt, FRESH)
    assert [await _count(running) for _ in range(4)] == [1, 1, 1, 1]
    assert running.slots["guest"].guest.reuse is None


async def test_an_instance_serves_up_to_the_count_then_a_fresh_one(rt: Runtime) -> None:
    running = await _load(rt, REUSE3)
    assert [await _count(running) for _ in range(7)] == [1, 2, 3, 1, 2, 3, 1]


async def test_a_trap_retires_the_instance(rt: Runtime) -> None:
    running = await _load(rt, REUSE3)
    assert [await _count(running), await _count(running)] == [1, 2]
    resp = await running.handle(request("/trap"))
    assert resp.status == 500
    await _settled(running)
    assert await _count(running) == 1


async def test_a_timeout_retires_the_instance(rt: Runtime) -> None:
    running = await _load(rt, dataclasses.replace(REUSE3, timeout_s=0.3))
    assert await _count(running) == 1
    resp = await running.handle(request("/loop"))
    assert resp.status == 504
    await _settled(running)
    # The looping request took the kept instance (it had served one /count) and timed out in it:
    # it is gone, and the next request starts afresh.
    assert running.slots["guest"].guest.reuse is not None and len(running.slots["guest"].guest.reuse) == 0
    assert [await _count(running), await _count(running)] == [1, 2]


async def test_idle_instances_are_dropped_after_the_timeout(rt: Runtime) -> None:
    running = await _load(rt, dataclasses.replace(REUSE3, idle_instance_timeout_s=0.2))
    assert [await _count(running), await _count(running)] == [1, 2]
    reuse = running.slots["guest"].guest.reuse
    assert reuse is not None and len(reuse) == 1
    await asyncio.sleep(0.8)  # the sweeper closes it without any request arriving
    assert len(reuse) == 0
    assert await _count(running) == 1


async def test_never_shared_between_apps_or_versions(rt: Runtime) -> None:
    one = await _load(rt, REUSE3, name="one")
    other = await _load(rt, REUSE3, name="other")
    assert [await _count(one), await _count(one)] == [1, 2]
    assert await _count(other) == 1  # same component, another app: its own instances
    # A new version of `one` (a hot swap) starts fresh; the old one's instances close with it.
    swapped = await _load(rt, REUSE3, name="one")
    assert await _count(swapped) == 1
    old_reuse = one.slots["guest"].guest.reuse
    one.close()
    assert old_reuse is not None and len(old_reuse) == 0



def _with_producer(component_text: str, tool: str) -> bytes:
    """The component with a top-level `producers` custom section naming `tool` as processed-by."""
    import wasmtime

    from runtime.engine.component_binary import leb128

    def name(text: str) -> bytes:
        return leb128(len(text.encode())) + text.encode()

    body = name("producers") + leb128(1) + name("processed-by") + leb128(1) + name(tool) + name("1.0.0")
    return bytes(wasmtime.wat2wasm(component_text)) + b"\x00" + leb128(len(body)) + body


FETCH_EVENT_BUILD = '(component (core module (func (export "wasi:http/incoming-handler@0.2.3#handle"))))'
JS_HANDLER_BUILD = ('(component (core module (func (export "wasi:http/incoming-handler@0.2.3#handle"))'
                    ' (func (export "cabi_post_wasi:http/incoming-handler@0.2.3#handle"))))')


def test_which_components_cannot_serve_a_second_request() -> None:
    from runtime.core.reuse import one_request_per_instance

    # StarlingMonkey's own FetchEvent handler (no post-return): refused, and the reason says how to fix it.
    why = one_request_per_instance(_with_producer(FETCH_EVENT_BUILD, "ComponentizeJS"))
    assert why is not None and "FetchEvent" in why and "incomingHandler" in why
    # The JS code implements the handler (ComponentizeJS made its post-return): reusable.
    assert one_request_per_instance(_with_producer(JS_HANDLER_BUILD, "ComponentizeJS")) is None
    # Another toolchain: reusable whatever its exports.
    assert one_request_per_instance(_with_producer(FETCH_EVENT_BUILD, "wit-component")) is None
