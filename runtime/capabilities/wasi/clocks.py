"""wasi:clocks/monotonic-clock@0.2.x (its pollables are Python objects; the wall clock stays in
wasmtime's WASI)."""

from __future__ import annotations

import time
from typing import Any

from runtime.capabilities.wasi.io import Pollable, new_pollable
from runtime.core.contract import BaseCapability, InterfaceImpl


class InstantPollable(Pollable):
    def __init__(self, when_ns: int) -> None:
        self.when_ns = when_ns

    def ready(self) -> bool:
        return time.monotonic_ns() >= self.when_ns

    def wait(self, deadline: float) -> None:
        remaining = min(self.when_ns / 1e9, deadline) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def _now(store: Any) -> int:
    return time.monotonic_ns()


def _resolution(store: Any) -> int:
    return 1


def _subscribe_instant(store: Any, when: int) -> Any:
    return new_pollable(InstantPollable(when))


def _subscribe_duration(store: Any, duration: int) -> Any:
    return new_pollable(InstantPollable(time.monotonic_ns() + duration))


class ClocksCapability(BaseCapability):
    name = "wasi-monotonic-clock"
    inline_safe = True  # in-memory work only: may run on the event loop (see runtime.http.scheduling)
    interfaces = frozenset({"wasi:clocks/monotonic-clock"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        return InterfaceImpl(
            funcs={
                "now": _now,
                "resolution": _resolution,
                "subscribe-instant": _subscribe_instant,
                "subscribe-duration": _subscribe_duration,
            }
        )
