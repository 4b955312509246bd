"""The guest worker threads: a thread pool that hands work to the most recently idle thread.

concurrent.futures.ThreadPoolExecutor queues work for whichever idle thread waited longest, so
sequential requests rotate through all its threads, each with a cold stack and CPU cache, and
often on another core. Here the thread that just finished takes the next request (LIFO), and is
woken directly, through its own handoff queue. Measured on a WAT hello forced onto worker
threads, sequential, in one process: see docs/explanation/execution-path.md.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

_STOP = None  # handed to an idle worker to end it


class _Job:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs

    def run(self) -> Callable[[], None]:
        """Run the call; return what settles its future. The worker settles it once it is idle
        again, so a caller that submits its next job as soon as this one's result arrives finds
        this thread idle (LIFO) instead of starting or waking another."""
        if not self.future.set_running_or_notify_cancel():
            return _nothing
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            return functools.partial(self.future.set_exception, exc)
        return functools.partial(self.future.set_result, result)


def _nothing() -> None:
    pass


def _lower_priority(niceness: int) -> None:
    """Make the calling thread `niceness` steps nicer than the process (Linux schedules threads
    one by one, so this is the thread's own). Where it cannot be done, the thread runs as is."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
    except (OSError, AttributeError):
        pass


class WorkerPool(Executor):
    """Up to `max_workers` threads, started on demand and kept; work beyond them waits in order."""

    def __init__(
        self, max_workers: int, thread_name_prefix: str = "worker", niceness: int = 0, idle_exit_s: float | None = None
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._niceness = niceness  # added to each worker thread's nice value (Linux: per thread)
        # A thread idle this long ends (its stack and malloc arena go back): a burst's threads do
        # not stay for the life of the process. LIFO keeps the busy ones warm. None: they stay.
        self._idle_exit_s = idle_exit_s
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[_Job | None]] = []  # a stack: the last one idle is first
        self._backlog: deque[_Job] = deque()
        self._threads: list[threading.Thread] = []
        self._started = 0
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        job = _Job(Future(), fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            if self._idle:
                self._idle.pop().put(job)
            elif len(self._threads) < self._max:
                self._start(job)
            else:
                self._backlog.append(job)
        return job.future

    def _start(self, first: _Job) -> None:
        handoff: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        handoff.put(first)
        self._started += 1
        thread = threading.Thread(target=self._work, args=(handoff,), name=f"{self._prefix}_{self._started}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self, handoff: queue.SimpleQueue[_Job | None]) -> None:
        if self._niceness:
            _lower_priority(self._niceness)
        job = handoff.get()
        while job is not _STOP:
            settle = job.run()
            del job  # (drop the finished job's references before waiting)
            with self._lock:
                following = self._backlog.popleft() if self._backlog else None
                idle = following is None and not self._shutdown
                if idle:
                    self._idle.append(handoff)
            settle()
            del settle
            if following is not None:
                job = following
            elif idle:
                job = self._wait_for_work(handoff)  # (a job handed over meanwhile waits here)
            else:
                return  # shut down

    def _wait_for_work(self, handoff: queue.SimpleQueue[_Job | None]) -> _Job | None:
        """The next job handed over; _STOP at shutdown, or after idle_exit_s idle (the thread ends)."""
        while True:
            try:
                return handoff.get(timeout=self._idle_exit_s)
            except queue.Empty:
                with self._lock:
                    if handoff in self._idle:  # nobody picked this thread meanwhile: it leaves
                        self._idle.remove(handoff)
                        self._threads.remove(threading.current_thread())
                        return _STOP
                # Picked between the timeout and the lock: its job is on the way.

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._backlog:
                    self._backlog.popleft().future.cancel()
            for handoff in self._idle:
                handoff.put(_STOP)
            self._idle.clear()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
