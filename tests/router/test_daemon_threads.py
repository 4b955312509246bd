"""router.loader.in_daemon_thread on a WorkerPool: pulls run on daemon threads kept for the next pull; a pull stuck
in a hung registry holds only its own thread; idle threads end."""

from __future__ import annotations

import asyncio
import threading
import time

from router.loader import PULL_THREADS, in_daemon_thread
from runtime.engine.worker_pool import WorkerPool


def _name() -> str:
    return threading.current_thread().name


async def test_sequential_calls_reuse_one_daemon_thread() -> None:
    threads = WorkerPool(PULL_THREADS, "t-reuse")
    names = {await in_daemon_thread(_name, threads) for _ in range(20)}
    assert len(names) == 1
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("t-reuse"))


async def test_a_stuck_call_does_not_hold_up_the_next() -> None:
    threads = WorkerPool(PULL_THREADS, "t-stuck")
    release = threading.Event()
    stuck = asyncio.ensure_future(in_daemon_thread(lambda: release.wait(10), threads))
    await asyncio.sleep(0.05)
    try:
        assert await asyncio.wait_for(in_daemon_thread(lambda: "served", threads), 5) == "served"
        assert await asyncio.wait_for(in_daemon_thread(lambda: "again", threads), 5) == "again"
    finally:
        release.set()
    assert await stuck is True
    raised = asyncio.ensure_future(in_daemon_thread(lambda: 1 // 0, threads))
    try:
        await raised
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the exception did not come back")


async def test_idle_threads_end() -> None:
    threads = WorkerPool(PULL_THREADS, "t-idle", idle_exit_s=0.2)
    gate = threading.Barrier(3)
    await asyncio.gather(*(in_daemon_thread(lambda: gate.wait(5), threads) for _ in range(3)))
    assert len([t for t in threading.enumerate() if t.name.startswith("t-idle")]) == 3
    deadline = time.monotonic() + 5
    while any(t.name.startswith("t-idle") for t in threading.enumerate()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("t-idle")]
    # And a call after they all ended starts a thread again.
    assert (await in_daemon_thread(_name, threads)).startswith("t-idle")
