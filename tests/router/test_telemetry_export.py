"""router/telemetry_export.py: spans cross from a worker to its exporter process intact, the
exporter process sends them with the SDK's OTLP exporter (decoded here by the test's receiver),
comes back after it dies, and ends with its worker's pipe even while the collector never answers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from router import telemetry_export
from router.telemetry_export import PipeSpanExporter, flatten, rebuild
from tests.support.otlp import SERVER_KIND, STATUS_ERROR, OtlpReceiver, SilentListener

RESOURCE = Resource({"service.name": "pipe-test", "service.instance.id": "i-1"})
SCOPE = ("lepton-router", "9.9")


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.spans += spans
        return SpanExportResult.SUCCESS


def _spans() -> list[ReadableSpan]:
    keep = _Keep()
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = provider.get_tracer(*SCOPE)
    parent = tracer.start_span("GET /x/...", kind=SpanKind.SERVER, attributes={"app": "x", "http.response.status_code": 500})
    from opentelemetry import trace

    child = tracer.start_span("execute_wasm_component main", context=trace.set_span_in_context(parent),
                              attributes={"app": "x", "tags": ("a", "b"), "ratio": 0.5, "ok": True})
    child.add_event("trap", {"why": "unreachable"})
    child.set_status(Status(StatusCode.ERROR, "wasm trap"))
    child.end()
    parent.end()
    return keep.spans


def test_a_span_crosses_as_it_was() -> None:
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    for span in _spans():
        back = rebuild(flatten(span), RESOURCE, InstrumentationScope(*SCOPE))
        assert back.to_json() == span.to_json()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def _exporter(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> PipeSpanExporter:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    return PipeSpanExporter("http/protobuf", RESOURCE, SCOPE, shutdown_timeout_s=4.0)


def test_the_exporter_process_sends_spans_and_comes_back_after_it_dies(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_export, "RESTART_DELAY_S", 0.0)
    exporter = _exporter(monkeypatch, receiver.endpoint)
    try:
        assert exporter.export(_spans()) is SpanExportResult.SUCCESS
        receiver.wait_for(lambda: len(receiver.spans()) == 2, 20, "two spans")
        server = next(s for s in receiver.spans() if s.kind == SERVER_KIND)
        child = next(s for s in receiver.spans() if s.kind != SERVER_KIND)
        assert child.parent_span_id == server.span_id and child.status_code == STATUS_ERROR
        assert child.attributes == {"app": "x", "tags": ["a", "b"], "ratio": 0.5, "ok": True}
        assert server.resource["service.instance.id"] == "i-1" and server.scope == "lepton-router"

        process = exporter._process
        assert process is not None
        process.kill()
        process.wait(10)
        # The batch that finds it dead starts another one, which takes the next batches.
        deadline = time.monotonic() + 20
        while len(receiver.spans()) < 4 and time.monotonic() < deadline:
            exporter.export(_spans())
            time.sleep(0.2)
        assert len(receiver.spans()) >= 4 and exporter._process is not process
    finally:
        exporter.shutdown()
    assert exporter._process is not None and exporter._process.poll() is not None


def test_the_exporter_process_ends_with_its_pipe_while_the_collector_never_answers(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = SilentListener().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")  # each export would wait 30 s
    exporter = _exporter(monkeypatch, silent.endpoint)
    try:
        process = exporter._process
        assert process is not None
        started = time.monotonic()
        for _ in range(20):
            # The worker's side never waits: the exporter process reads on while it is stuck.
            assert exporter.export(_spans()) is SpanExportResult.SUCCESS
        assert time.monotonic() - started < 5.0
        assert process.stdin is not None
        os.close(process.stdin.fileno())  # as when the worker is gone, however it went
        process.wait(15)  # its linger (4 s), not 20 exports of 30 s
    finally:
        exporter.shutdown()
        silent.stop()
