"""Spans leave the worker before they are encoded: a worker's spans are exported by a process of
its own, started by router/telemetry.py when traces are on.

Why: encoding spans into OTLP protobuf is Python work (about as much per span as making it), and a
worker's event loop holds the GIL for every request; done on a thread of the worker, the encoding
took turns with the requests. Here the worker's BatchSpanProcessor (bounded queue, its own thread)
hands each batch to :class:`PipeSpanExporter`, which flattens the spans into plain tuples and
writes them, marshalled, to the exporter process's stdin: a few microseconds a span. The exporter
process (``python -m router.telemetry_export``) rebuilds them as the SDK's ReadableSpans and
exports them with the SDK's OTLP exporter, configured by the same ``OTEL_*`` variables, on a core
of its own.

Nothing waits on it from a request: the exporter process reads batches as they come and keeps at
most MAX_PENDING_FRAMES of them while a slow or dead collector holds its exports (then drops the
oldest); should it fall behind anyway, the pipe fills and blocks the batch processor's thread,
never a request, and the batch queue drops. If the exporter process dies it is started again (at
most every RESTART_DELAY_S); what was in flight is lost. It ends when its stdin does, when the
worker closes it at shutdown or exits however it exits, after at most the worker's shutdown budget
for what it still holds: it never outlives its worker by more.

This module also builds the OTLP exporters of every signal (:func:`make_exporter`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import marshal
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

log = logging.getLogger("lepton.telemetry")

_LENGTH = struct.Struct("!I")
RESTART_DELAY_S = 10.0
MAX_PENDING_FRAMES = 64  # batches the exporter process holds while the collector is slow
FORMAT = 1  # of the frames below; the worker and its exporter are always the same code

Record = tuple[Any, ...]


EXPORT_TIMEOUT_S = 3.0  # per export (the SDK's default is 10 s)

_GRPC_EXPORTERS = {
    "TRACES": ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    "METRICS": ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    "LOGS": ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
}


def supported(signal: str, proto: str) -> bool:
    """Whether `signal` can be exported with `proto` here; the reason is logged when not."""
    if proto == "http/json":
        log.error("OpenTelemetry %s: the http/json OTLP protocol is not supported (as in Spin); %s stay off",
                  signal.lower(), signal.lower())
        return False
    if proto == "grpc" and importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None:
        log.error("OpenTelemetry %s: the grpc protocol needs opentelemetry-exporter-otlp-proto-grpc "
                  "(pip install 'lepton-router[otel-grpc]'); %s stay off", signal.lower(), signal.lower())
        return False
    return True


def make_exporter(signal: str, proto: str) -> Any:
    """The OTLP exporter for `signal` (a protocol :func:`supported` accepts), configured by the
    standard variables."""
    timeout = None if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT") else EXPORT_TIMEOUT_S
    if proto == "grpc":
        module, name = _GRPC_EXPORTERS[signal]
        return getattr(importlib.import_module(module), name)(timeout=timeout)
    if signal == "TRACES":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(timeout=timeout)
    if signal == "METRICS":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(timeout=timeout)


def hashed(resource: Resource) -> Resource:
    """The same resource, with its hash computed once. The exporters group every span and log
    record by resource, and the SDK's Resource hashes by serialising its attributes to JSON each
    time: a tenth of the export's CPU for a small span. Resources are immutable, so the hash is."""
    class FixedResource(Resource):
        def __hash__(self) -> int:
            return digest

    fixed = FixedResource(dict(resource.attributes), resource.schema_url)
    digest = Resource.__hash__(fixed)
    return fixed


def flatten(span: ReadableSpan) -> Record:
    """A span as marshal-able values."""
    context = span.context
    assert context is not None  # (every span the SDK ends has one)
    parent = span.parent
    state = context.trace_state
    events = span.events
    status = span.status
    return (
        span.name,
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        tuple(state.items()) if state else (),
        (parent.span_id, parent.is_remote, int(parent.trace_flags)) if parent is not None else None,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes or {}),
        status.status_code.value,
        status.description,
        tuple((e.name, e.timestamp, dict(e.attributes or {})) for e in events) if events else (),
    )


def rebuild(record: Record, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    (name, trace_id, span_id, flags, state, parent, kind, start, end, attributes, code, description,
     events) = record
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags),
                          trace_state=TraceState(list(state)))
    parent_context = None
    if parent is not None:
        parent_context = SpanContext(trace_id, parent[0], is_remote=parent[1], trace_flags=TraceFlags(parent[2]))
    return ReadableSpan(
        name=name, context=context, parent=parent_context, resource=resource, attributes=attributes,
        events=[Event(n, a, t) for n, t, a in events], kind=SpanKind(kind),
        status=Status(StatusCode(code), description), start_time=start, end_time=end,
        instrumentation_scope=scope,
    )


def _write_frame(stream: IO[bytes], value: Any) -> None:
    data = marshal.dumps(value)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> Any:
    """The next frame, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        return None
    return marshal.loads(data)


class PipeSpanExporter(SpanExporter):
    """The worker's side: a SpanExporter that hands batches to the exporter process."""

    def __init__(self, protocol: str, resource: Resource, scope: tuple[str, str | None],
                 shutdown_timeout_s: float) -> None:
        self._init = (FORMAT, protocol, dict(resource.attributes), resource.schema_url, scope, shutdown_timeout_s)
        self._shutdown_timeout_s = shutdown_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._closed = False
        self._start()

    def _start(self) -> None:
        self._started_at = time.monotonic()
        env = dict(os.environ)
        # The exporter imports router/ as this process did, installed or from a source tree.
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        try:
            process = subprocess.Popen([sys.executable, "-m", "router.telemetry_export"], stdin=subprocess.PIPE,
                                       env=env, close_fds=True)
            assert process.stdin is not None
            _write_frame(process.stdin, self._init)
        except OSError as exc:
            log.error("OpenTelemetry: the span exporter process did not start: %s", exc)
            self._process = None
            return
        self._process = process

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        records = [flatten(span) for span in spans]
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            process = self._process
            if process is None or process.poll() is not None:
                if time.monotonic() - self._started_at < RESTART_DELAY_S:
                    return SpanExportResult.FAILURE  # dropped: the exporter is down for now
                if process is not None:
                    log.warning("OpenTelemetry: the span exporter process ended (%s); starting another",
                                process.returncode)
                self._start()
                process = self._process
                if process is None:
                    return SpanExportResult.FAILURE
            try:
                assert process.stdin is not None
                # Blocks this (the batch processor's) thread while the exporter is behind: its
                # queue fills and drops, requests never wait.
                _write_frame(process.stdin, records)
            except (OSError, ValueError):
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            process = self._process
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.close()  # the exporter exports what it has, then ends
        except OSError:
            pass
        try:
            process.wait(self._shutdown_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def main() -> int:
    """The exporter process: frames from stdin to the OTLP exporter, until stdin ends."""
    # Ctrl-C in a terminal reaches the whole process group: this process ends with its worker's
    # pipe instead, after exporting what it was given.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    stdin = sys.stdin.buffer
    init = _read_frame(stdin)
    if init is None or init[0] != FORMAT:
        return 1
    _, protocol, attributes, schema_url, (scope_name, scope_version), linger_s = init
    exporter = make_exporter("TRACES", protocol)
    resource = hashed(Resource(attributes, schema_url))
    scope = InstrumentationScope(scope_name, scope_version)
    # Frames are read as they come, whatever the collector does, so the worker's writes never
    # wait for long; when exports fall behind, the oldest frames go.
    pending: deque[list[Record]] = deque(maxlen=MAX_PENDING_FRAMES)
    changed = threading.Condition()
    ended = threading.Event()

    def read() -> None:
        while (records := _read_frame(stdin)) is not None:
            with changed:
                pending.append(records)
                changed.notify()
        with changed:
            ended.set()
            changed.notify()
        # The worker is done or gone: what is left has linger_s to go out, then this ends.
        time.sleep(linger_s)
        os._exit(0)

    threading.Thread(target=read, name="lepton-otel-read", daemon=True).start()
    while True:
        with changed:
            while not pending and not ended.is_set():
                changed.wait()
            if not pending:
                break
            records = pending.popleft()
        exporter.export([rebuild(record, resource, scope) for record in records])
    exporter.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
