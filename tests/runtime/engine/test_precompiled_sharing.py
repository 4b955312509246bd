"""The compiled-code cache shares one compiled object per digest between its users, and never hands
out one that is being closed: CPython runs wasmtime-py's `__del__` (which closes the object) before
it clears weak references to it, so a weak map of the wasmtime objects themselves gave a load on
another thread, in that window, a Component that was being closed ("already closed" under load)."""

from __future__ import annotations

import gc
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from runtime.engine.precompiled import CompiledCache
from tests.support.fixtures import FIXTURES_DIR

DIGEST = "sha256:" + "c3" * 32


def _hello(tmp_path: Path) -> Path:
    wasm = tmp_path / "hello.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((FIXTURES_DIR / "wat" / "hello.wat").read_text()))
    return wasm


def test_users_of_one_digest_share_its_code_until_the_last_lets_go(tmp_path: Path) -> None:
    cache = CompiledCache(wasmtime.Engine(), tmp_path / "compiled")
    wasm = _hello(tmp_path)
    first = cache.load_shared(wasm, DIGEST)
    second = cache.load_shared(wasm, DIGEST)
    assert second is first and cache.stats["shared"] == 1
    del first, second
    gc.collect()
    third = cache.load_shared(wasm, DIGEST)  # no user left: read from disk again
    assert cache.stats == {"hits": 1, "misses": 1, "rejected": 0, "shared": 1}
    assert isinstance(third.code, Component)


def test_a_load_while_the_last_user_lets_go_never_gets_closed_code(tmp_path: Path) -> None:
    """Another thread's load, run at the worst moment: inside the dying Component's close."""
    cache = CompiledCache(wasmtime.Engine(), tmp_path / "compiled")
    wasm = _hello(tmp_path)
    loaded_meanwhile: list[Component] = []
    original_delete = Component._delete

    def delete_with_a_load_in_between(self: Component, ptr: object) -> None:
        if not loaded_meanwhile:
            loaded_meanwhile.append(cache.load_shared(wasm, DIGEST).code)  # type: ignore[arg-type]
        original_delete(self, ptr)  # type: ignore[arg-type]

    handle = cache.load_shared(wasm, DIGEST)
    Component._delete = delete_with_a_load_in_between  # type: ignore[method-assign]
    try:
        del handle  # the last user: its code is closed now
        gc.collect()
    finally:
        Component._delete = original_delete  # type: ignore[method-assign]
    assert len(loaded_meanwhile) == 1, "the dying code was never closed"
    loaded_meanwhile[0].ptr()  # raised ValueError("already closed") when the weak map held the Component itself
