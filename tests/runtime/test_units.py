"""Pure pieces of runtime/: path confinement, body buffers, import names, log line splitting."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from runtime.capabilities.wasi.cli import LogOutputStream
from runtime.capabilities.wasi.filesystem import FsError, resolve_confined
from runtime.capabilities.wasi.http import HEADER_FORBIDDEN, HEADER_INVALID, _check
from runtime.core.contract import resource_type_id, split_import_name
from runtime.core.guest_io import BUFFER_LIMIT, BodyError, BodySource, ResponseSink, SinkClosed
from runtime.engine.epoch import EPOCH_TICK_S, deadline_ticks
from runtime.engine.precompiled import is_component
from runtime.errors import DeadlineExceeded


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    (root / "inner").symlink_to(root / "sub" / "b.txt")
    return Path(os.path.realpath(root))


def test_resolve_confined_allows_paths_inside(tree: Path) -> None:
    assert resolve_confined(tree, tree, "a.txt") == tree / "a.txt"
    assert resolve_confined(tree, tree, "sub/../a.txt") == tree / "a.txt"
    assert resolve_confined(tree, tree / "sub", "b.txt") == tree / "sub" / "b.txt"
    assert resolve_confined(tree, tree, "inner") == tree / "sub" / "b.txt"  # symlink staying inside
    assert resolve_confined(tree, tree, ".") == tree


@pytest.mark.parametrize("path", ["../outside.txt", "sub/../../outside.txt", "/etc/passwd", "escape", "a\0b"])
def test_resolve_confined_refuses_escapes(tree: Path, path: str) -> None:
    with pytest.raises(FsError) as err:
        resolve_confined(tree, tree, path)
    assert err.value.code == "not-permitted"


def test_resolve_confined_missing(tree: Path) -> None:
    with pytest.raises(FsError) as err:
        resolve_confined(tree, tree, "nope.txt")
    assert err.value.code == "no-entry"


def test_import_names_and_resource_ids() -> None:
    assert split_import_name("wasi:http/types@0.2.3") == ("wasi:http/types", "0.2.3")
    assert split_import_name("fermyon:spin/inbound-http") == ("fermyon:spin/inbound-http", None)
    a = resource_type_id("test:x/y", "thing")
    assert resource_type_id("test:x/y", "thing") == a
    assert resource_type_id("test:x/y", "other") != a


def test_deadline_ticks_and_wasm_kind(tmp_path: Path) -> None:
    assert deadline_ticks(1.0) >= 1.0 / EPOCH_TICK_S
    assert deadline_ticks(0) == 1
    core = tmp_path / "m.wasm"
    core.write_bytes(b"\0asm\x01\0\0\0")
    comp = tmp_path / "c.wasm"
    comp.write_bytes(b"\0asm\x0d\0\x01\0")
    assert not is_component(core)
    assert is_component(comp)
    with pytest.raises(ValueError):
        bad = tmp_path / "x.wasm"
        bad.write_bytes(b"notwasm!")
        is_component(bad)


def test_header_checks() -> None:
    assert _check("content-type", [b"text/plain"]) is None
    assert _check("bad name", [b"x"]) == HEADER_INVALID
    assert _check("x-ok", [b"a\r\nb"]) == HEADER_INVALID
    assert _check("Transfer-Encoding", [b"chunked"]) == HEADER_FORBIDDEN


def test_body_source_reads_in_pieces_then_eof() -> None:
    src = BodySource()
    src.feed(b"hello world")
    assert src.read(5, None) == b"hello"
    assert src.read(100, None) == b" world"
    assert src.read(100, None) == b""  # nothing yet, not ended
    src.end()
    assert src.read(100, None) is None


def test_body_source_error_and_deadline() -> None:
    src = BodySource()
    with pytest.raises(DeadlineExceeded):
        src.read(10, time.monotonic() + 0.05)
    src.end(ConnectionError("client went away"))
    with pytest.raises(BodyError):
        src.read(10, None)


def test_body_source_blocking_read_wakes_on_feed() -> None:
    src = BodySource()
    got: list[bytes | None] = []
    reader = threading.Thread(target=lambda: got.append(src.read(10, time.monotonic() + 5)))
    reader.start()
    time.sleep(0.05)
    src.feed(b"late")
    reader.join()
    assert got == [b"late"]


async def test_response_sink_back_pressure_and_close() -> None:
    loop = asyncio.get_running_loop()
    sink = ResponseSink(loop)
    blocked = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            sink.start(200, [])
            sink.write(b"x" * (BUFFER_LIMIT + 1))
            blocked.set()
            sink.write(b"y", time.monotonic() + 5)  # waits: the buffer is over the limit
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert await sink.head_future == (200, [])
    await asyncio.to_thread(blocked.wait, 5)
    sink.close()  # the client went away: the blocked writer fails
    await asyncio.to_thread(thread.join, 5)
    assert len(errors) == 1 and isinstance(errors[0], SinkClosed)


def test_log_stream_splits_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = LogOutputStream("[app/c]", logging.INFO)
    with caplog.at_level(logging.INFO, logger="lepton.guest"):
        stream.write(b"one\ntw", True, 0)
        stream.write(b"o\r\nthree", True, 0)
        stream.close()
    assert [r.getMessage() for r in caplog.records] == ["[app/c] one", "[app/c] two", "[app/c] three"]


async def test_response_sink_coalesces_and_flushes() -> None:
    loop = asyncio.get_running_loop()
    sink = ResponseSink(loop)
    await asyncio.to_thread(sink.start, 200, [("x", b"1")])
    await asyncio.sleep(0.01)
    assert not sink.head_future.done()  # pending: the guest neither finished nor blocked
    sink.flush_pending()  # the runner's loop timer
    assert sink.head_future.result() == (200, [("x", b"1")])

    sink2 = ResponseSink(loop)
    await asyncio.to_thread(sink2.start, 201, [])
    await asyncio.to_thread(sink2.flush)  # the guest is about to block
    assert await asyncio.wait_for(sink2.head_future, 5) == (201, [])

    sink3 = ResponseSink(loop)
    await asyncio.to_thread(sink3.finish, RuntimeError("trap"))  # finishing is always told at once
    with pytest.raises(RuntimeError, match="trap"):
        await asyncio.wait_for(sink3.head_future, 5)


def test_unknown_import_is_a_trap_naming_it() -> None:
    from wasmtime import Store
    from wasmtime.component import Component

    from runtime.core.linking import build_linker
    from runtime.engine.config import make_engine
    from runtime.errors import GuestTrap
    from runtime.runtime import default_capabilities

    engine = make_engine(concurrency=1)
    component = Component(
        engine,
        """(component
          (import "acme:missing/api@1.0.0" (instance $api (export "ping" (func))))
          (core func $ping (canon lower (func $api "ping")))
          (core module $m (import "" "ping" (func $p)) (func (export "run") call $p))
          (core instance $i (instantiate $m (with "" (instance (export "ping" (func $ping))))))
          (func (export "run") (canon lift (core func $i "run"))))""",
    )
    linker, report = build_linker(engine, component, default_capabilities())
    assert report.unsupported == ["acme:missing/api@1.0.0"]
    store = Store(engine)
    store.set_epoch_deadline(1_000_000)  # the engine interrupts at once without a deadline
    instance = linker.instantiate(store, component)
    run = instance.get_func(store, "run")
    assert run is not None
    with pytest.raises(GuestTrap, match=r"unsupported import acme:missing/api@1.0.0#ping"):
        run(store)


async def test_thread_cap_waits_releases_and_survives_cancellation() -> None:
    from runtime.http.app import ThreadCap

    cap = ThreadCap(1)
    await cap.acquire()
    assert cap.in_use == 1
    cancelled = asyncio.create_task(cap.acquire())  # first in the queue, then gives up
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(cap.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    cap.release()  # goes to `waiter`, not to the cancelled one
    await asyncio.wait_for(waiter, 5)
    assert cap.in_use == 1
    # Granted from another event loop's thread.
    await asyncio.to_thread(cap.release)
    assert cap.in_use == 0
