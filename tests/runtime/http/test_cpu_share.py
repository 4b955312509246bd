"""CpuShare (runtime/http/scheduling.py): an app's guests execute only while holding one of its
turns; a run that cannot get one before its deadline fails with DeadlineExceeded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from runtime.errors import DeadlineExceeded
from runtime.http.scheduling import CpuShare


def test_turns_are_limited_and_come_back() -> None:
    share = CpuShare(2)
    far = time.monotonic() + 30
    share.take(far)
    share.take(far)
    with pytest.raises(DeadlineExceeded, match="kept every CPU turn"):
        share.take(time.monotonic() + 0.05)  # both turns held: waits until its deadline
    with pytest.raises(DeadlineExceeded):
        share.take(time.monotonic() - 1)  # a deadline already past does not wait at all

    taken = threading.Event()

    def waiter() -> None:
        share.take(time.monotonic() + 30)
        taken.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not taken.wait(0.1)  # still no free turn
    share.give()
    assert taken.wait(10)  # the given turn went to the waiting run
    thread.join(10)
    share.give()
    share.give()
    share.take(far)  # two turns free again, no more
    share.take(far)
    with pytest.raises(DeadlineExceeded):
        share.take(time.monotonic() + 0.01)


def _pool_start(threads: list[threading.Thread]) -> Callable[[Callable[[], None]], None]:
    """A CpuShare `start` that runs each callable on a new thread (and keeps the threads)."""

    def start(fn: Callable[[], None]) -> None:
        thread = threading.Thread(target=fn)
        threads.append(thread)
        thread.start()

    return start


def test_runs_beyond_the_turns_queue_and_run_in_order_on_the_thread_holding_the_turn() -> None:
    threads: list[threading.Thread] = []
    share = CpuShare(1, _pool_start(threads))
    release_first = threading.Event()
    ran: list[tuple[str, int]] = []

    first_started = threading.Event()

    def run(name: str, block: threading.Event | None = None) -> Callable[[], bool]:
        def body() -> bool:
            if block is not None:
                first_started.set()
                assert block.wait(10)
            ran.append((name, threading.get_ident()))
            return True  # still holds the turn

        return body

    share.submit(run("first", release_first))
    assert first_started.wait(10)
    share.submit(run("second"))
    share.submit(run("third"))
    assert share.queued == 2 and len(threads) == 1  # no thread started for a run that must wait
    release_first.set()
    for thread in threads:
        thread.join(10)
    assert [name for name, _ in ran] == ["first", "second", "third"]
    assert len({ident for _, ident in ran}) == 1  # one thread ran them all, one after another
    assert share.queued == 0
    share.take(time.monotonic() + 1)  # and the turn is free again (only one)
    with pytest.raises(DeadlineExceeded):
        share.take(time.monotonic() + 0.01)


def test_a_run_that_waited_gets_the_turn_back_before_queued_runs_start() -> None:
    threads: list[threading.Thread] = []
    share = CpuShare(1, _pool_start(threads))
    order: list[str] = []
    waiting = threading.Event()
    resume = threading.Event()
    second_started = threading.Event()

    def waiter() -> bool:
        order.append("waiter runs")
        share.give()  # a host-side wait: the turn goes to the queued run, on a thread of its own
        waiting.set()
        assert resume.wait(10)
        share.take(time.monotonic() + 10)  # back: after the run that has the turn now, before "third"
        order.append("waiter resumed")
        return True

    def second() -> bool:
        second_started.set()
        assert resume.wait(10)
        time.sleep(0.05)  # the waiter is waiting for the turn by now
        order.append("second")
        return True

    def third() -> bool:
        order.append("third")
        return True

    share.submit(waiter)
    share.submit(second)
    assert waiting.wait(10) and second_started.wait(10)
    share.submit(third)  # queued: the turn is second's
    resume.set()
    deadline = time.monotonic() + 10
    while len(order) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    for thread in threads:
        thread.join(10)
    assert order == ["waiter runs", "second", "waiter resumed", "third"]


def test_a_run_that_could_not_take_its_turn_back_passes_nothing_on() -> None:
    threads: list[threading.Thread] = []
    share = CpuShare(1, _pool_start(threads))
    share.take(time.monotonic() + 1)  # someone else holds the only turn

    def gives_up() -> bool:
        return False  # as a run whose guest missed its deadline waiting for the turn

    share.drain(gives_up)  # (a run started on this thread)
    with pytest.raises(DeadlineExceeded):
        share.take(time.monotonic() + 0.01)  # the turn was not freed by the run that did not hold it
    share.give()
    share.take(time.monotonic() + 1)
