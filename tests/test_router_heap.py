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
