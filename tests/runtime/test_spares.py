"""Fresh instances made ahead of their request (runtime/core/spares.py), on the WAT guest whose
/count answers how many /count requests its instance has served (x-count): a spare must be as
fresh as an instance made in the request."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from runtime import Runtime
from runtime.core.spares import SpareInstances, SparePolicy
from runtime.http.app import RunningApp
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.runtime_helpers import GUEST_WAT, WAT_DIR, instance_count, read, request

FRESH = AppSettings(timeout_s=5.0, memory_bytes=32 * MiB)
ALWAYS = SparePolicy(mode="always")


@pytest.fixture()
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path_factory.mktemp("rtcache"))
    yield runtime
    runtime.close()


async def _load(rt: Runtime, policy: SparePolicy, wat: str = str(GUEST_WAT), name: str = "spares") -> RunningApp:
    rt.spare_policy = policy
    rt._spare_budget.limit = policy.max_live  # (the budget is the process's, made with the Runtime)
    return await rt.load_app(loaded_app([component("guest", wat)], name=name), FRESH)


def _spares(running: RunningApp) -> SpareInstances:
    spares = running.slots["guest"].guest.spares
    assert spares is not None
    return spares


async def _until(condition: object, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_requests_served_by_spares_start_from_a_fresh_instance(rt: Runtime) -> None:
    running = await _load(rt, ALWAYS)
    spares = _spares(running)
    # The second request in a row marks the component busy: from then on a spare waits for each.
    counts = [await instance_count(running), await instance_count(running)]
    for _ in range(6):
        await _until(lambda: len(spares) == 1, "the next spare")
        counts.append(await instance_count(running))
    assert counts == [1] * 8  # no request saw another's state
    assert spares.taken == 6


async def test_an_idle_component_gets_no_spare(rt: Runtime) -> None:
    running = await _load(rt, SparePolicy(mode="always", busy_within_s=0.05))
    spares = _spares(running)
    for _ in range(3):
        assert await instance_count(running) == 1
        await asyncio.sleep(0.15)  # slower than "busy"
    assert len(spares) == 0 and spares.taken == 0


async def test_auto_makes_spares_only_where_instantiating_costs_enough(rt: Runtime) -> None:
    cheap = await _load(rt, SparePolicy(mode="auto", worth_it_s=60.0), name="cheap")
    for _ in range(4):
        await instance_count(cheap)
    await asyncio.sleep(0.1)
    assert len(_spares(cheap)) == 0 and _spares(cheap).instantiate_s is not None

    worth_it = await _load(rt, SparePolicy(mode="auto", worth_it_s=0.0), name="worth-it")
    await instance_count(worth_it)
    await instance_count(worth_it)
    await _until(lambda: len(_spares(worth_it)) == 1, "a spare")


async def test_an_unused_spare_goes_after_the_idle_timeout_and_its_slot_comes_back(rt: Runtime) -> None:
    running = await _load(rt, SparePolicy(mode="always", idle_timeout_s=0.3))
    spares = _spares(running)
    await instance_count(running)
    await instance_count(running)
    await _until(lambda: len(spares) == 1, "a spare")
    assert rt._spare_budget.live == 1
    await _until(lambda: len(spares) == 0, "the idle spare to close", timeout=3.0)
    assert rt._spare_budget.live == 0
    assert await instance_count(running) == 1  # and the app serves as before


async def test_a_retired_version_closes_its_spare_and_makes_no_more(rt: Runtime) -> None:
    old = await _load(rt, ALWAYS, name="v1")
    new = await _load(rt, ALWAYS, name="v2")
    await instance_count(old)
    await instance_count(old)
    await _until(lambda: len(_spares(old)) == 1, "a spare")
    spares = _spares(old)
    make = old.slots["guest"].guest.new_instance
    old.close()
    assert len(spares) == 0 and rt._spare_budget.live == 0
    spares.take(make)  # (as a late request would)
    await asyncio.sleep(0.1)
    assert len(spares) == 0 and rt._spare_budget.live == 0
    assert await instance_count(new) == 1  # the other app is untouched


async def test_the_process_holds_at_most_max_live_spares(rt: Runtime) -> None:
    policy = SparePolicy(mode="always", max_live=2)
    apps = [await _load(rt, policy, name=f"app{i}") for i in range(4)]
    for running in apps:
        await instance_count(running)
        await instance_count(running)
    await _until(lambda: sum(len(_spares(a)) for a in apps) == 2, "two spares")
    await asyncio.sleep(0.1)
    assert sum(len(_spares(a)) for a in apps) == 2 and rt._spare_budget.live == 2
    assert [await instance_count(a) for a in apps] == [1, 1, 1, 1]


async def test_a_start_function_calling_the_host_gets_no_spares_and_still_serves(
        rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    running = await _load(rt, ALWAYS, wat=str(WAT_DIR / "start_calls_host.wat"), name="start-host")
    spares = _spares(running)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            resp = await running.handle(request("/"))
            await read(resp)
            # Made in the request (its start function's host call has the request's context); the
            # handler itself answers nothing.
            assert resp.status == 500
        await _until(lambda: spares.disabled is not None, "spares to be given up")
    assert "outside of a request" in (spares.disabled or "")
    assert "no instances made ahead for this component" in caplog.text
    assert len(spares) == 0 and rt._spare_budget.live == 0
    neighbour = await _load(rt, ALWAYS, name="neighbour")
    assert [await instance_count(neighbour) for _ in range(3)] == [1, 1, 1]
    # One thread makes the spares of every app: the failures left no extra thread behind.
    assert sum(t.name.startswith("lepton-spare") for t in threading.enumerate()) <= 1


async def test_closing_the_runtime_closes_every_spare(tmp_path_factory: pytest.TempPathFactory) -> None:
    runtime = Runtime(tmp_path_factory.mktemp("rtcache"))
    apps = [await _load(runtime, ALWAYS, name=f"app{i}") for i in range(2)]
    for running in apps:
        await instance_count(running)
        await instance_count(running)
    await _until(lambda: [len(_spares(a)) for a in apps] == [1, 1], "two spares")
    runtime.close()  # (a spare's Store holds the Engine, and with it the pool's address space)
    assert runtime._spare_budget.live == 0 and [len(_spares(a)) for a in apps] == [0, 0]


def _is_closed(store: object) -> bool:
    try:
        store.ptr()  # type: ignore[attr-defined]
    except ValueError:
        return True
    return False


def test_deferred_closes_wait_for_their_thread_up_to_a_limit() -> None:
    import wasmtime

    from runtime.core.spares import DeferredCloses

    jobs: list[object] = []  # what would run on the maker's thread, run here by hand
    closes = DeferredCloses(jobs.append, limit=2)
    engine = wasmtime.Engine()
    stores = [wasmtime.Store(engine) for _ in range(4)]
    closes.close_soon(stores[0])
    closes.close_soon(stores[1])
    assert len(jobs) == 1 and len(closes) == 2  # one drain job for both
    assert not any(_is_closed(s) for s in stores[:2])
    closes.close_soon(stores[2])  # over the limit: its request closes it itself
    assert _is_closed(stores[2]) and len(closes) == 2
    jobs.pop()()  # type: ignore[operator]
    assert _is_closed(stores[0]) and _is_closed(stores[1]) and len(closes) == 0
    closes.close_soon(stores[3])  # a new drain job, which never runs (its Runtime closed)
    assert len(jobs) == 1
    closes.close_all()
    assert _is_closed(stores[3])


async def test_requests_of_a_component_with_spares_close_their_store_on_the_maker_thread(rt: Runtime) -> None:
    running = await _load(rt, ALWAYS)
    closed_on: list[str] = []
    closes = rt._deferred_closes
    real_drain = closes._drain

    def drain() -> None:  # (records the thread, then does the real work)
        closed_on.append(threading.current_thread().name)
        real_drain()

    closes._drain = drain  # type: ignore[method-assign]
    counts = [await instance_count(running) for _ in range(6)]
    assert counts == [1] * 6
    await _until(lambda: len(closes) == 0 and closed_on, "the deferred closes")
    assert all(name.startswith("lepton-spare") for name in closed_on), closed_on


async def test_a_full_pool_skips_a_spare_without_ending_spares_for_the_component(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every pooling-allocator slot in use (real instances, a real wasmtime refusal): the spare is
    not made, and once slots are free again the next one is. Only a failure that will recur (a
    start function calling the host) ends a component's spares."""
    from runtime.engine.instance_pool import PoolLimits

    runtime = Runtime(tmp_path_factory.mktemp("rtcache"), workers=1)
    held = []
    try:
        running = await _load(runtime, ALWAYS)
        spares = _spares(running)
        guest = running.slots["guest"].guest
        for _ in range(PoolLimits.for_concurrency(1).component_instances):
            held.append(guest.new_instance())
        spares._pending = True  # (as take() marks it before submitting _fill)
        spares._fill(guest.new_instance)  # here, not on the maker's thread: the pool is full
        assert len(spares) == 0 and spares.disabled is None and not spares._pending
        for store, _ in held:
            store.close()
        held.clear()
        spares._pending = True
        spares._fill(guest.new_instance)
        assert len(spares) == 1
        assert await instance_count(running) == 1  # the request takes it: fresh
        assert spares.taken == 1
    finally:
        for store, _ in held:
            store.close()
        runtime.close()
