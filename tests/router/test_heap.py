"""HeapPolicy: loaded apps are frozen out of GC; released cyclic garbage is still reclaimed later."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from router import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic GC can free it


async def test_freeze_then_maintenance_reclaims_released_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "MAINTENANCE_DELAY_S", 0.05)
    monkeypatch.setattr(heap, "MAINTENANCE_INTERVAL_S", 0.05)
    policy = heap.HeapPolicy()
    try:
        node = Node()  # stands for a loaded app version
        ref = weakref.ref(node)
        policy.after_swap(retired_any=False)
        assert gc.get_freeze_count() > 0
        del node  # the version is released after a later swap...
        gc.collect()
        assert ref() is not None  # ...but frozen objects are not collected
        policy.after_swap(retired_any=True)
        for _ in range(100):
            if ref() is None:
                break
            await asyncio.sleep(0.02)
        assert ref() is None  # the maintenance pass unfroze, collected and froze again
        assert gc.get_freeze_count() > 0
    finally:
        policy.close()
        gc.unfreeze()


def test_a_swap_frees_young_garbage_instead_of_freezing_it() -> None:
    policy = heap.HeapPolicy()
    try:
        node = Node()  # garbage of a request that ended just before the swap
        ref = weakref.ref(node)
        del node
        policy.after_swap(retired_any=False)
        assert ref() is None  # freed by the swap's young collection, not frozen for good
    finally:
        policy.close()
        gc.unfreeze()


async def test_maintenance_waits_for_a_quiet_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "MAINTENANCE_DELAY_S", 0.05)
    monkeypatch.setattr(heap, "IDLE_CHECK_S", 0.02)
    busy = True
    policy = heap.HeapPolicy(busy=lambda: busy)
    try:
        node = Node()
        ref = weakref.ref(node)
        policy.after_swap(retired_any=False)  # freezes the "version"
        del node
        policy.after_swap(retired_any=True)
        await asyncio.sleep(0.3)
        assert ref() is not None  # due, but requests keep arriving: the pause waits
        busy = False
        for _ in range(100):
            if ref() is None:
                break
            await asyncio.sleep(0.02)
        assert ref() is None  # taken at the first quiet moment
    finally:
        policy.close()
        gc.unfreeze()


async def test_maintenance_is_forced_when_the_server_is_never_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "MAINTENANCE_DELAY_S", 0.05)
    monkeypatch.setattr(heap, "IDLE_CHECK_S", 0.02)
    monkeypatch.setattr(heap, "MAINTENANCE_MAX_WAIT_S", 0.2)
    policy = heap.HeapPolicy(busy=lambda: True)
    try:
        node = Node()
        ref = weakref.ref(node)
        policy.after_swap(retired_any=False)
        del node
        policy.after_swap(retired_any=True)
        for _ in range(100):
            if ref() is None:
                break
            await asyncio.sleep(0.02)
        assert ref() is None
    finally:
        policy.close()
        gc.unfreeze()
