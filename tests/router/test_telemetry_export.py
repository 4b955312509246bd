"""A worker's telemetry records (runtime/telemetry/record.py) and its telemetry process
(router/telemetry_export.py): records become the SDK's spans, metric points and log records, the
process sends them with the SDK's OTLP exporters (decoded here by the test's receiver), comes back
after it dies, and ends with its worker's pipe even while the collector never answers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from router import telemetry_export
from router.telemetry_export import TelemetryProcess, rebuild_span
from runtime.telemetry.metrics import Instruments
from runtime.telemetry.record import CLIENT, LOG, SERVER, Parent, Recorder, Sink
from tests.support.otlp import CLIENT_KIND, SERVER_KIND, STATUS_ERROR, OtlpReceiver, SilentListener

RESOURCE = Resource({"service.name": "pipe-test", "service.instance.id": "i-1"})
SCOPE = ("lepton-router", "9.9")
ALL = {"TRACES": "http/protobuf", "METRICS": "http/protobuf", "LOGS": "http/protobuf"}


def _recorder(sink: Sink) -> Recorder:
    ids = iter(range(1, 1_000_000))
    return Recorder(sink, lambda: 0xABC, lambda: next(ids), None)


def _a_request(sink: Sink) -> None:
    """The records of one traced request: a server span continuing a traceparent, a client span
    under it that failed, a count, a CPU time and a log line."""
    recorder = _recorder(sink)
    server = recorder.start("GET /x/...", Parent(0xABC, 0x77, 1, True), SERVER, {"app": "x"})
    client = recorder.start("GET", server.as_parent(), CLIENT, {"app": "x", "tags": ("a", "b"), "ratio": 0.5})
    client.set_error("connection-refused")
    client.end()
    server.attributes["http.response.status_code"] = 200
    server.end()
    Instruments(sink).request("x", "x-id", "main")
    Instruments(sink).cpu_time("x", "x-id", "main", 0.002)
    sink.put((LOG, time.time_ns(), "hello from the guest", 9, "INFO", {"app": "x"}, 0xABC, server.span_id, 1))


def test_records_become_the_sdks_spans() -> None:
    sink = Sink(100)
    _a_request(sink)
    resource, scope = RESOURCE, InstrumentationScope(*SCOPE)
    client, server = (rebuild_span(r, resource, scope) for r in list(sink.records)[:2])
    assert server.name == "GET /x/..." and server.kind is SpanKind.SERVER
    assert server.parent is not None and server.parent.span_id == 0x77 and server.parent.is_remote
    assert server.context is not None and server.context.trace_id == 0xABC
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert not client.parent.is_remote
    assert client.status.status_code is StatusCode.ERROR and client.status.description == "connection-refused"
    assert dict(client.attributes or {}) == {"app": "x", "tags": ("a", "b"), "ratio": 0.5}
    assert client.end_time is not None and client.start_time is not None and client.end_time >= client.start_time


def test_a_span_the_sampler_leaves_out_records_nothing_and_neither_do_its_children() -> None:
    sink = Sink(100)
    recorder = _recorder(sink)
    server = recorder.start("GET", Parent(0xABC, 0x77, 0, True), SERVER, {})  # traceparent flags 00
    child = recorder.start("execute_wasm_component main", server.as_parent(), 0, {})
    child.end()
    server.end()
    assert not server.recording and not child.recording and not sink.records
    assert child.trace_id == 0xABC  # (its traceparent still says "not sampled" downstream)


def test_a_full_sink_drops_the_oldest_and_counts() -> None:
    sink = Sink(4)
    for i in range(10):
        sink.put((LOG, i))
    assert [r[1] for r in sink.records] == [6, 7, 8, 9] and sink.dropped == 6


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def _process(monkeypatch: pytest.MonkeyPatch, endpoint: str, sink: Sink) -> TelemetryProcess:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    for name in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BLRP_SCHEDULE_DELAY", "OTEL_METRIC_EXPORT_INTERVAL"):
        monkeypatch.setenv(name, "100")
    return TelemetryProcess(sink, ALL, RESOURCE, SCOPE, shutdown_timeout_s=4.0)


def test_the_telemetry_process_exports_all_three_and_comes_back_after_it_dies(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_export, "RESTART_DELAY_S", 0.0)
    sink = Sink(1000)
    process = _process(monkeypatch, receiver.endpoint, sink)
    try:
        _a_request(sink)
        process.drain()
        receiver.wait_for(lambda: len(receiver.spans()) == 2 and receiver.log_records() and any(
            p.name == "spin.component_cpu_time" for p in receiver.metric_points()), 20, "spans, a log, metrics")
        server = next(s for s in receiver.spans() if s.kind == SERVER_KIND)
        client = next(s for s in receiver.spans() if s.kind == CLIENT_KIND)
        assert server.parent_span_id == "0000000000000077" and client.parent_span_id == server.span_id
        assert client.status_code == STATUS_ERROR and client.attributes["tags"] == ["a", "b"]
        assert server.resource["service.instance.id"] == "i-1" and server.scope == "lepton-router"
        count = next(p for p in receiver.metric_points() if p.name == "spin.request_count")
        assert count.attributes == {"trigger_type": "http", "app_id": "x-id", "component_id": "main", "app": "x"}
        line = receiver.log_records()[0]
        assert line.body == "hello from the guest" and line.span_id == server.span_id

        first = process.process
        assert first is not None
        first.kill()
        first.wait(10)
        # The drain that finds it dead starts another one, which takes the next records.
        deadline = time.monotonic() + 20
        while len(receiver.spans()) < 4 and time.monotonic() < deadline:
            _a_request(sink)
            process.drain()
            time.sleep(0.2)
        assert len(receiver.spans()) >= 4 and process.process is not first
    finally:
        process.shutdown()
    assert process.process is not None and process.process.poll() is not None


def test_the_telemetry_process_ends_with_its_pipe_while_the_collector_never_answers(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = SilentListener().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")  # each export would wait 30 s
    sink = Sink(100_000)
    process = _process(monkeypatch, silent.endpoint, sink)
    try:
        child = process.process
        assert child is not None
        started = time.monotonic()
        for _ in range(2000):
            _a_request(sink)
        process.drain()  # the worker's side never waits: the telemetry process reads on while stuck
        assert time.monotonic() - started < 5.0
        assert child.stdin is not None
        os.close(child.stdin.fileno())  # as when the worker is gone, however it went
        child.wait(15)  # its linger (4 s), not exports of 30 s
    finally:
        process.shutdown()
        silent.stop()
