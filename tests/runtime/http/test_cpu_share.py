"""CpuShare (runtime/http/scheduling.py): an app's guests execute only while holding one of its
turns; a run that cannot get one before its deadline fails with DeadlineExceeded."""

from __future__ import annotations

import threading
import time

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
