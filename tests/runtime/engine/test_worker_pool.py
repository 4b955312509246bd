"""runtime.engine.worker_pool: bounded, in order beyond its bound, and the last idle thread goes first."""

from __future__ import annotations

import os
import threading
import time

import pytest

from runtime.engine.worker_pool import WorkerPool


def test_results_and_exceptions_come_back_through_futures() -> None:
    pool = WorkerPool(2, "t")
    try:
        assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(timeout=5) == 5
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(timeout=5)
    finally:
        pool.shutdown()


def test_sequential_work_stays_on_the_last_idle_thread() -> None:
    pool = WorkerPool(8, "t")
    try:
        # Four threads exist and are idle (as after a burst of concurrent requests).
        barrier = threading.Barrier(4)
        for f in [pool.submit(barrier.wait, 5) for _ in range(4)]:
            f.result(timeout=5)
        names = set()
        for _ in range(20):
            names.add(pool.submit(lambda: threading.current_thread().name).result(timeout=5))
            # The worker is idle again before the next submit (all four back on the idle stack; a
            # fixed short sleep was not always enough on a loaded machine).
            deadline = time.monotonic() + 5
            while len(pool._idle) < 4 and time.monotonic() < deadline:
                time.sleep(0.001)
        # ThreadPoolExecutor hands each job to the thread idle longest: it rotates through all four.
        assert len(names) == 1
    finally:
        pool.shutdown()


def test_the_bound_holds() -> None:
    pool = WorkerPool(2, "t")
    release = threading.Event()
    running = 0
    most = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1

    try:
        futures = [pool.submit(job) for _ in range(6)]
        time.sleep(0.05)
        assert running == 2
        release.set()
        for f in futures:
            f.result(timeout=5)
        assert most == 2
    finally:
        pool.shutdown()


def test_work_beyond_the_bound_waits_in_order() -> None:
    pool = WorkerPool(1, "t")
    gate = threading.Event()
    order: list[int] = []
    try:
        first = pool.submit(gate.wait, 5)
        futures = [pool.submit(order.append, i) for i in range(5)]
        gate.set()
        first.result(timeout=5)
        for f in futures:
            f.result(timeout=5)
        assert order == [0, 1, 2, 3, 4]
    finally:
        pool.shutdown()


def test_shutdown_cancels_the_backlog_and_refuses_new_work() -> None:
    pool = WorkerPool(1, "t")
    gate = threading.Event()
    busy = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert busy.result(timeout=5) is True
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(lambda: None)
    pool.shutdown(wait=True)


def test_idle_threads_end_and_busy_ones_stay() -> None:
    pool = WorkerPool(max_workers=4, idle_exit_s=0.3)
    try:
        gate = threading.Event()
        burst = [pool.submit(gate.wait, 5) for _ in range(4)]  # four threads at once
        gate.set()
        for f in burst:
            f.result(timeout=5)
        assert len(pool._threads) == 4
        deadline = time.monotonic() + 5
        while pool._threads and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool._threads == []  # all idle past the limit: gone
        # and the pool starts threads again on demand
        assert pool.submit(lambda: threading.current_thread().name).result(timeout=5).startswith("worker_")
    finally:
        pool.shutdown()


def test_worker_threads_run_at_the_given_niceness() -> None:
    pool = WorkerPool(max_workers=1, niceness=3)
    try:
        nice = pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result(timeout=5)
        assert nice == os.getpriority(os.PRIO_PROCESS, 0) + 3
    finally:
        pool.shutdown()
