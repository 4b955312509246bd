"""runtime/ end to end on the hand-written WAT components: Runtime.load_app + RunningApp.handle."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runtime import AppLoadError, Runtime
from runtime.core.guest_io import BUFFER_LIMIT
from runtime.http.scheduling import INLINE_STRIKES
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.runtime_helpers import GUEST_WAT, HELLO_WAT, header, read, request

SETTINGS = AppSettings(timeout_s=2.0, memory_bytes=32 * MiB, max_body_bytes=4 * MiB)


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path_factory.mktemp("rtcache"))
    yield runtime
    runtime.close()


def app(*specs, **kwargs):  # type: ignore[no-untyped-def]
    return loaded_app(list(specs), name=kwargs.pop("name", "wat-app"), **kwargs)


async def test_hello(rt: Runtime) -> None:
    running = await rt.load_app(app(component("hello", HELLO_WAT)), SETTINGS)
    resp = await running.handle(request("/anything"))
    assert resp.status == 200
    assert header(resp, "content-type") == "text/plain"
    assert await read(resp) == b"Hello, Fermyon!\n"


async def test_echo_sees_method_path_authority_headers_and_body(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    resp = await running.handle(
        request("/echo/x", query="a=1&b", body=b"payload", method="PUT", headers=[("x-custom", "v1")])
    )
    assert resp.status == 200
    assert header(resp, "x-echo-method") == "PUT"
    assert header(resp, "x-echo-path") == "/echo/x?a=1&b"
    assert header(resp, "x-echo-authority") == "example.com"
    assert header(resp, "x-req-x-custom") == "v1"
    assert await read(resp) == b"payload"


async def test_other_method_is_passed_through(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    resp = await running.handle(request("/echo", method="PROPFIND"))
    assert header(resp, "x-echo-method") == "PROPFIND"


async def test_conformance_request_shape(rt: Runtime) -> None:
    """The issue's conformance case: exactly these spin-* headers, with Spin's values."""
    running = await rt.load_app(
        app(component("guest", GUEST_WAT, route="/base/:path_segment/:path_end/...")), SETTINGS
    )
    resp = await running.handle(
        request("/base/path/end/rest", query="key=value", host="example.com", client_addr=("127.0.0.1", 5555))
    )
    assert resp.status == 200
    assert header(resp, "x-echo-authority") == "example.com"
    assert header(resp, "x-echo-path") == "/base/path/end/rest?key=value"
    spin = {n.removeprefix("x-req-"): v.decode() for n, v in resp.headers if n.startswith("x-req-spin-")}
    assert spin == {
        "spin-path-info": "/rest",
        "spin-full-url": "http://example.com/base/path/end/rest?key=value",
        "spin-matched-route": "/base/:path_segment/:path_end/...",
        "spin-base-path": "/",
        "spin-raw-component-route": "/base/:path_segment/:path_end/...",
        "spin-component-route": "/base/:path_segment/:path_end",
        "spin-client-addr": "127.0.0.1:5555",
        "spin-path-match-path-segment": "path",
        "spin-path-match-path-end": "end",
    }


async def test_mount_prefix_is_stripped(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT, route="/a/...")), SETTINGS)
    resp = await running.handle(request("/hello/a/b", query="x", mount_prefix="/hello"))
    assert resp.status == 200
    assert header(resp, "x-echo-path") == "/a/b?x"
    assert header(resp, "x-req-spin-base-path") == "/hello"
    assert header(resp, "x-req-x-forwarded-prefix") == "/hello"
    assert header(resp, "x-req-spin-full-url") == "http://example.com/hello/a/b?x"
    assert header(resp, "x-req-spin-path-info") == "/b"
    # Outside the app's routes (after stripping) -> 404.
    assert (await running.handle(request("/hello/zzz", mount_prefix="/hello"))).status == 404


async def test_routing_well_known_static_and_404(rt: Runtime) -> None:
    running = await rt.load_app(
        app(
            component("hello", HELLO_WAT, route="/hello"),
            static_routes=[("/static", {"status_code": 201, "headers": {"x-s": "1"}, "body": "static!"})],
            name="routed",
        ),
        SETTINGS,
    )
    assert (await running.handle(request("/hello/"))).status == 200  # trailing slash ignored
    assert (await running.handle(request("/nope"))).status == 404
    static = await running.handle(request("/static"))
    assert (static.status, header(static, "x-s"), await read(static)) == (201, "1", b"static!")
    health = await running.handle(request("/.well-known/spin/health"))
    assert (health.status, await read(health)) == (200, b"OK")
    info = await running.handle(request("/.well-known/spin/info"))
    assert info.status == 200
    assert b'"name": "routed"' in await read(info)
    assert (await running.handle(request("/.well-known/spin/other"))).status == 404


async def test_trap_is_500_and_next_request_succeeds(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    for _ in range(3):
        resp = await running.handle(request("/trap"))
        assert resp.status == 500
        assert await read(resp) == b""
        ok = await running.handle(request("/echo", body=b"still fine"))
        assert ok.status == 200
        assert await read(ok) == b"still fine"


async def test_blocking_write_of_more_than_4096_bytes_traps_as_in_wasmtime(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    with caplog.at_level(logging.ERROR):
        resp = await running.handle(request("/over"))  # 4097 bytes in one blocking-write-and-flush
        assert resp.status == 500
    assert "Buffer too large for blocking-write-and-flush (expected at most 4096)" in caplog.text
    # The guest's own writes stay within the limit: 4 KiB pieces still carry big bodies.
    big = await running.handle(request("/big/256"))
    assert (big.status, len(await read(big))) == (200, 256 * 1024)


async def test_infinite_loop_is_stopped_by_the_timeout(rt: Runtime) -> None:
    settings = AppSettings(timeout_s=0.5, memory_bytes=32 * MiB)
    running = await rt.load_app(app(component("guest", GUEST_WAT)), settings)
    resp = await running.handle(request("/loop"))
    assert resp.status == 504
    assert (await running.handle(request("/echo"))).status == 200


async def test_memory_limit(rt: Runtime) -> None:
    # /oom grows memory by 64 MiB in one step and traps if refused.
    small = await rt.load_app(app(component("guest", GUEST_WAT)), AppSettings(timeout_s=5.0, memory_bytes=32 * MiB))
    assert (await small.handle(request("/oom"))).status == 500
    assert (await small.handle(request("/echo"))).status == 200
    large = await rt.load_app(app(component("guest", GUEST_WAT)), AppSettings(timeout_s=5.0, memory_bytes=128 * MiB))
    assert (await large.handle(request("/oom"))).status == 200


async def test_one_mib_post_is_echoed_intact(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    data = bytes(range(256)) * 4096
    resp = await running.handle(request("/echo", body=data))
    assert resp.status == 200
    assert await read(resp) == data


async def test_body_over_limit_is_413(rt: Runtime) -> None:
    settings = AppSettings(timeout_s=5.0, memory_bytes=32 * MiB, max_body_bytes=100_000)
    running = await rt.load_app(app(component("guest", GUEST_WAT)), settings)
    assert (await running.handle(request("/echo", body=b"x" * 100_001))).status == 413

    async def unannounced() -> AsyncIterator[bytes]:  # no Content-Length: found out while streaming
        for _ in range(10):
            yield b"y" * 65536

    resp = await running.handle(request("/echo", chunks=unannounced()))
    # The echo guest answers before reading the body; once the body runs over the limit its next
    # read fails, so the echo stops at what was accepted (at most the chunk that crossed it).
    assert resp.status == 200
    assert len(await read(resp)) <= 2 * 65536


async def test_request_and_response_stream_both_ways(rt: Runtime) -> None:
    """Ping-pong: each request chunk is sent only after the previous one came back."""
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    echoed = asyncio.Queue[bytes]()

    async def client_body() -> AsyncIterator[bytes]:
        for i in range(5):
            chunk = f"chunk-{i};".encode()
            yield chunk
            got = await asyncio.wait_for(echoed.get(), 5)
            assert got == chunk

    resp = await running.handle(request("/echo", chunks=client_body()))
    assert resp.status == 200
    received = []
    async for chunk in resp.body:
        received.append(chunk)
        await echoed.put(chunk)
    assert b"".join(received) == b"".join(f"chunk-{i};".encode() for i in range(5))


async def test_large_download_is_not_buffered_whole(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    kib = 32 * 1024  # 32 MiB
    resp = await running.handle(request(f"/big/{kib}"))
    assert resp.status == 200
    total = 0
    largest = 0
    async for chunk in resp.body:
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert total == kib * 1024
    # The guest is held back by the bounded buffer: no batch is anywhere near the whole body.
    assert largest <= BUFFER_LIMIT + 64 * 1024


async def test_a_body_known_to_be_empty_reaches_the_guest_as_an_empty_stream(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    resp = await running.handle(request("/echo", body=b""))  # content-length: 0
    assert (resp.status, await read(resp)) == (200, b"")
    assert header(resp, "x-echo-method") == "POST"


async def test_finished_body_is_framed_by_its_length_and_a_streamed_one_is_not(rt: Runtime) -> None:
    running = await rt.load_app(app(component("hello", HELLO_WAT)), SETTINGS)
    resp = await running.handle(request("/"))
    body = await read(resp)
    assert header(resp, "content-length") == str(len(body)) == "16"
    assert resp.whole_body == body  # handed over whole: the server sends it in one message
    head = await running.handle(request("/", method="HEAD"))
    assert header(head, "content-length") is None  # the GET body's length is not ours to claim
    assert head.whole_body == b"" and await read(head) == b""
    streaming = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    big = await streaming.handle(request("/big/4096"))  # 4 MiB: still being written when the head goes out
    assert header(big, "content-length") is None
    assert big.whole_body is None
    assert len(await read(big)) == 4096 * 1024


async def test_client_going_away_stops_the_guest(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    resp = await running.handle(request("/big/1048576"))  # 1 GiB if nobody stopped it
    body = resp.body
    assert isinstance(body, AsyncIterator)
    first = await body.__anext__()
    assert first
    assert running.threads.in_use == 1
    await body.aclose()  # type: ignore[attr-defined]
    # The guest's next write fails and it ends: its worker thread is given back.
    for _ in range(500):
        if running.threads.in_use == 0:
            break
        await asyncio.sleep(0.01)
    assert running.threads.in_use == 0
    ok = await running.handle(request("/echo", body=b"after"))
    assert await read(ok) == b"after"


def test_8_threads_x_200_requests_each_answer_matches(rt: Runtime) -> None:
    """Concurrent guests (inline on 8 loops, and on the worker pool) never mix up requests."""
    running = asyncio.run(rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS))
    failures: list[str] = []
    answered = [0] * 8

    def worker(n: int) -> None:
        try:
            asyncio.run(go(n))
        except BaseException as exc:  # a crashed thread must fail the test, not vanish
            failures.append(f"thread {n}: {exc!r}")

    async def go(n: int) -> None:
        for i in range(200):
            # Up to ~80 KB: bodies over the 64 KiB read-ahead always take the worker pool.
            payload = f"thread {n} request {i} ".encode() * (1 + (i % 7) * 600)
            resp = await running.handle(request(f"/echo/{n}/{i}", body=payload, headers=[("x-n", f"{n}-{i}")]))
            got = await read(resp)
            if (
                resp.status != 200
                or got != payload
                or header(resp, "x-echo-path") != f"/echo/{n}/{i}"
                or header(resp, "x-req-x-n") != f"{n}-{i}"
            ):
                failures.append(f"{n}/{i}: {resp.status} {len(got)}")
            answered[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert answered == [200] * 8


async def test_precompiled_cache_hit_and_corrupt_entry_recovery(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = Runtime(cache)
    try:
        running = await first.load_app(app(component("hello", HELLO_WAT)), SETTINGS)
        assert (await running.handle(request("/"))).status == 200
        assert first.cache.stats["misses"] == 1
    finally:
        first.close()
    entries = list((cache / "compiled").glob("*.cwasm"))
    assert len(entries) == 1
    second = Runtime(cache)
    try:
        kept = await second.load_app(app(component("hello", HELLO_WAT)), SETTINGS)
        assert second.cache.stats == {"hits": 1, "misses": 0, "rejected": 0, "shared": 0}
        # Loading it again while in use (e.g. a new version of an app) shares the compiled code.
        await second.load_app(app(component("hello", HELLO_WAT)), SETTINGS)
        assert second.cache.stats["shared"] == 1
        assert kept.slots
    finally:
        second.close()
    entry = entries[0]
    # Corrupt the entry: detected, recompiled, served.
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    assert await _load_in_a_new_runtime(cache) == ({"hits": 0, "misses": 1, "rejected": 1, "shared": 0}, 200)
    # A torn write (the entry cut short): detected the same way.
    entry.write_bytes(entry.read_bytes()[:-100])
    assert await _load_in_a_new_runtime(cache) == ({"hits": 0, "misses": 1, "rejected": 1, "shared": 0}, 200)
    # No sidecar: the entry cannot be checked, so it is not trusted.
    entry.with_suffix(".crc32").unlink()
    assert await _load_in_a_new_runtime(cache) == ({"hits": 0, "misses": 1, "rejected": 1, "shared": 0}, 200)
    # An entry from before the CRC sidecar (a .sha256 one): replaced quietly, not rejected.
    entry.with_suffix(".crc32").rename(entry.with_suffix(".sha256"))
    assert await _load_in_a_new_runtime(cache) == ({"hits": 0, "misses": 1, "rejected": 0, "shared": 0}, 200)
    assert not entry.with_suffix(".sha256").exists()
    # A store that stopped after its sidecar (no entry): a plain miss, nothing to reject.
    entry.unlink()
    assert await _load_in_a_new_runtime(cache) == ({"hits": 0, "misses": 1, "rejected": 0, "shared": 0}, 200)


async def _load_in_a_new_runtime(cache: Path) -> tuple[dict[str, int], int]:
    """(cache stats, status of one request) of the hello app loaded by a fresh Runtime."""
    runtime = Runtime(cache)
    try:
        running = await runtime.load_app(app(component("hello", HELLO_WAT)), SETTINGS)
        return dict(runtime.cache.stats), (await running.handle(request("/"))).status
    finally:
        runtime.close()


async def test_load_errors_name_app_and_component(rt: Runtime, tmp_path: Path) -> None:
    no_exports = tmp_path / "empty.wat"
    no_exports.write_text("(component)")
    with pytest.raises(AppLoadError, match=r"app 'bad'.*component 'empty'.*executor"):
        await rt.load_app(loaded_app([component("empty", no_exports)], name="bad"), SETTINGS)
    not_wasm = tmp_path / "junk.wasm"
    not_wasm.write_bytes(b"\0asm\x01\0\0\0garbage")
    with pytest.raises(AppLoadError, match=r"component 'junk'"):
        await rt.load_app(loaded_app([component("junk", not_wasm)], name="bad"), SETTINGS)


async def test_unknown_imports_still_link(rt: Runtime, tmp_path: Path) -> None:
    # A component importing an interface no host provides still loads (its functions are traps).
    wat = tmp_path / "unknown.wat"
    text = GUEST_WAT.read_text().rstrip()
    assert text.endswith(")")
    # Appended last so no existing index shifts.
    wat.write_text(text[:-1] + '(import "acme:missing/api@1.0.0" (instance (export "ping" (func)))))')
    running = await rt.load_app(loaded_app([component("u", wat)], name="unknown"), SETTINGS)
    assert (await running.handle(request("/echo"))).status == 200


async def test_inline_run_over_budget_is_retried_on_a_worker(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), AppSettings(timeout_s=1.0, memory_bytes=32 * MiB))
    slot = running.slots["guest"]
    assert slot.may_inline  # only wasi built-ins: eligible once it has proven fast
    assert (await running.handle(request("/echo"))).status == 200
    # Stand in for recent fast runs (real timings vary with machine load).
    slot.recent = (0.0001,) * 4
    assert slot.inline_now()
    with caplog.at_level(logging.INFO):
        resp = await running.handle(request("/loop"))
        assert resp.status == 504  # the full app timeout applied, on a worker thread
        assert any("retrying on a worker thread" in r.getMessage() for r in caplog.records)
        assert not slot.inline_now()  # until it proves cheap again
        for _ in range(INLINE_STRIKES - 1):
            slot.recent = (0.0001,) * 4
            assert slot.inline_now()
            assert (await running.handle(request("/loop"))).status == 504
    slot.recent = (0.0001,) * 4
    assert not slot.inline_now()  # for good: it would stall the event loop again and again
    assert any("on worker threads from now on" in r.getMessage() for r in caplog.records)


async def test_a_guest_that_waits_is_judged_by_its_wall_time(rt: Runtime) -> None:
    # Inline eligibility counts a run's CPU time, except when the guest waited: a guest that
    # blocks would otherwise look cheap and be run on the event loop, stalling it.
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    slot = running.slots["guest"]

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"a"
        await asyncio.sleep(0.1)  # the guest blocks reading the rest of its body
        yield b"b"

    resp = await running.handle(request("/echo", chunks=slow_body()))
    assert (resp.status, await read(resp)) == (200, b"ab")
    for _ in range(200):  # the run is recorded when its worker thread hands back, just after
        if slot.recent:
            break
        await asyncio.sleep(0.01)
    assert slot.recent[-1] >= 0.05  # wall time of the wait, not the few microseconds of CPU
    slot.recent = (*slot.recent[-1:], *(0.0001,) * 3)
    assert not slot.inline_now()


async def test_one_app_cannot_take_every_worker_thread(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path / "cache", workers=4)  # each app may hold 2 threads
    try:
        settings = AppSettings(timeout_s=3.0, memory_bytes=32 * MiB)
        greedy = await runtime.load_app(app(component("guest", GUEST_WAT), name="greedy"), settings)
        other = await runtime.load_app(app(component("guest", GUEST_WAT), name="other"), settings)
        release = asyncio.Event()

        async def stalled_body() -> AsyncIterator[bytes]:
            yield b"x"
            await release.wait()  # the client stops sending; the guest blocks reading

        # More stuck requests than the pool has threads: without the cap they would hold all four.
        stuck = [asyncio.create_task(greedy.handle(request("/echo", chunks=stalled_body()))) for _ in range(5)]
        await asyncio.sleep(0.2)
        # Two threads are held by `greedy`; the other app still gets a thread at once.
        resp = await asyncio.wait_for(other.handle(request("/echo", chunks=body_chunks([b"a" * 70_000]))), 2.0)
        assert (resp.status, len(await read(resp))) == (200, 70_000)
        release.set()
        for task in stuck:
            resp = await task
            assert resp.status == 200
            assert await read(resp) == b"x"
    finally:
        runtime.close()


async def test_runs_queued_behind_a_spinning_guest_end_by_their_deadline(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path / "cache", cpu_turns_per_app=1)
    try:
        settings = AppSettings(timeout_s=0.5, memory_bytes=32 * MiB)
        busy = await runtime.load_app(app(component("guest", GUEST_WAT), name="busy"), settings)
        other = await runtime.load_app(app(component("guest", GUEST_WAT), name="other"), settings)
        spinning = [asyncio.create_task(busy.handle(request("/loop"))) for _ in range(4)]
        await asyncio.sleep(0.1)
        assert busy.cpu.queued == 3  # waiting for the app's one turn, not each on a thread
        # Another app's turn is its own.
        resp = await asyncio.wait_for(other.handle(request("/echo", chunks=body_chunks([b"a" * 70_000]))), 2.0)
        assert (resp.status, len(await read(resp))) == (200, 70_000)
        # Each queued run either ran until its deadline or reached it in the queue: 504 either way,
        # within about one timeout of the first, not one timeout after another.
        started = asyncio.get_running_loop().time()
        assert [(await task).status for task in spinning] == [504] * 4
        assert asyncio.get_running_loop().time() - started < 1.5
        # The turn and the threads came back: the app serves again.
        resp = await busy.handle(request("/echo", chunks=body_chunks([b"b" * 70_000])))
        assert (resp.status, len(await read(resp))) == (200, 70_000)
        for _ in range(200):  # (the worker releases its thread just after the response is out)
            if busy.threads.in_use == 0:
                break
            await asyncio.sleep(0.01)
        assert busy.threads.in_use == 0 and busy.cpu.queued == 0
    finally:
        runtime.close()


async def body_chunks(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_request_body_breaking_off_is_not_an_exception(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)

    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionResetError("client went away")

    req = request("/echo", body=b"0123456789")
    req = dataclasses.replace(req, body=broken())
    assert (await running.handle(req)).status == 400
    assert (await running.handle(request("/echo"))).status == 200


async def test_head_response_has_no_body(rt: Runtime) -> None:
    running = await rt.load_app(app(component("hello", HELLO_WAT)), SETTINGS)
    resp = await running.handle(request("/", method="HEAD"))
    assert resp.status == 200
    assert header(resp, "content-type") == "text/plain"
    assert await read(resp) == b""


async def test_body_finished_before_the_response_is_set(rt: Runtime) -> None:
    running = await rt.load_app(app(component("guest", GUEST_WAT)), SETTINGS)
    for _ in range(2):  # worker thread, then (once fast) possibly inline
        resp = await running.handle(request("/late"))
        assert (resp.status, await read(resp)) == (200, b"late\n")


async def test_guest_faults_leave_no_unretrieved_futures(rt: Runtime) -> None:
    # asyncio logs unretrieved future exceptions from the GC, formatting a traceback, which on
    # Python 3.11 re-enters ast.parse and can break a compile() running at that moment.
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    running = await rt.load_app(app(component("guest", GUEST_WAT)), AppSettings(timeout_s=0.5, memory_bytes=32 * MiB))
    slot = running.slots["guest"]
    for path in ("/trap", "/oom", "/loop"):
        assert (await running.handle(request(path))).status in (500, 504)  # worker thread
        slot.recent = (0.0001,) * 4
        assert (await running.handle(request(path))).status in (500, 504)  # inline (or its retry)
    gc.collect()
    await asyncio.sleep(0)
    assert reported == []
