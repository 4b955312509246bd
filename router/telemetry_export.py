"""The telemetry process of a worker: it turns what the worker recorded (runtime/telemetry/record.py)
into the OpenTelemetry SDK's spans, metric points and log records and exports them with the SDK's
OTLP exporters, configured by the same ``OTEL_*`` variables. router/telemetry.py starts one per
worker when any signal is on.

Why a process: the worker's event loop serves every request and holds the GIL to do it. Made and
exported in the worker, the SDK's spans cost the loop about a third of a WAT hello request's CPU
(measured in the running server: making them, queueing them for the batch processor, encoding
them). Here the worker appends a tuple per span, metric point or log line to a bounded buffer
(record.Sink); a drain thread of the worker (:class:`TelemetryProcess`) marshals what gathered
every DRAIN_INTERVAL_S and writes it to this process's stdin; this process (``python -m
router.telemetry_export``) rebuilds each span as a ReadableSpan for a BatchSpanProcessor, adds
each count and CPU time to the SDK's instruments, emits each log line to the SDK's logger, on a
core of its own.

Nothing waits on it from a request: a slow or dead collector holds this process's exports, whose
batch processors drop when full, and this process reads its stdin as it comes into a backlog of
at most MAX_PENDING_FRAMES (then drops the oldest); should it fall behind anyway, the pipe fills
and blocks the worker's drain thread, never a request, and the worker's buffer drops its oldest
records. If this process dies, the drain thread starts another (at most every RESTART_DELAY_S);
what was in flight is lost, and its counters start again. It ends when its stdin does, when the
worker closes it at shutdown or exits however it exits, after at most the worker's shutdown budget
for what it still holds: it never outlives its worker by more.

This module also builds the OTLP exporters (:func:`make_exporter`).
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.resources import Resource

from runtime.telemetry import names
from runtime.telemetry.record import COUNT, CPU, LOG, SPAN, Record, Sink

log = logging.getLogger("lepton.telemetry")

_LENGTH = struct.Struct("!I")
FORMAT = 2  # of the frames below; a worker and its telemetry process are always the same code
DRAIN_INTERVAL_S = 0.2  # how long records wait in the worker for the drain thread, at most
FRAME_RECORDS = 4096  # records per frame
RESTART_DELAY_S = 10.0
MAX_PENDING_FRAMES = 64  # frames this process holds while its exports fall behind
SPAN_QUEUE = 16384  # spans waiting for export, unless OTEL_BSP_MAX_QUEUE_SIZE says otherwise (~25 MiB)
NICENESS = 19  # the telemetry process runs at the lowest priority: it gets the CPU the workers leave

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


# -- the worker's side ----------------------------------------------------------------------------


class TelemetryProcess:
    """Drains a worker's Sink into its telemetry process, and keeps that process running."""

    def __init__(self, sink: Sink, protocols: dict[str, str], resource: Resource, scope: tuple[str, str | None],
                 shutdown_timeout_s: float) -> None:
        self._sink = sink
        self._init = (FORMAT, protocols, dict(resource.attributes), resource.schema_url, scope, shutdown_timeout_s)
        self._shutdown_timeout_s = shutdown_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._dropped_reported = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start()
        sink.wake = self._wake.set
        self._thread = threading.Thread(target=self._drain_loop, name="lepton-otel-drain", daemon=True)
        self._thread.start()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    def _start(self) -> None:
        self._started_at = time.monotonic()
        env = dict(os.environ)
        # It imports router/ as this process did, installed or from a source tree.
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        try:
            process = subprocess.Popen([sys.executable, "-m", "router.telemetry_export"], stdin=subprocess.PIPE,
                                       env=env, close_fds=True)
            assert process.stdin is not None
            _write_frame(process.stdin, self._init)
        except OSError as exc:
            log.error("OpenTelemetry: the telemetry process did not start: %s", exc)
            self._process = None
            return
        self._process = process

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(DRAIN_INTERVAL_S)
            self._wake.clear()
            self.drain()
        self.drain()

    def drain(self) -> None:
        """Send what the sink holds (the drain thread; tests call it too)."""
        records = self._sink.records
        batch: list[Record] = []
        try:
            while True:
                batch.append(records.popleft())
        except IndexError:
            pass
        dropped = self._sink.dropped
        if dropped > self._dropped_reported and time.monotonic() - self._started_at > 0:
            log.warning("OpenTelemetry: %d records dropped so far (the telemetry process is behind or down)",
                        dropped)
            self._dropped_reported = dropped
        for start in range(0, len(batch), FRAME_RECORDS):
            if not self._write(batch[start:start + FRAME_RECORDS]):
                return

    def _write(self, frame: list[Record]) -> bool:
        process = self._process
        if process is None or process.poll() is not None:
            if self._stop.is_set() or time.monotonic() - self._started_at < RESTART_DELAY_S:
                return False  # dropped: the telemetry process is down for now
            if process is not None:
                log.warning("OpenTelemetry: the telemetry process ended (%s); starting another", process.returncode)
            self._start()
            process = self._process
            if process is None:
                return False
        try:
            assert process.stdin is not None
            # Blocks this thread while the telemetry process is behind: the sink drops, requests
            # never wait.
            _write_frame(process.stdin, frame)
        except (OSError, ValueError):
            return False
        return True

    def shutdown(self) -> None:
        """Send what is left, close the pipe, and give the telemetry process the shutdown budget
        to export it."""
        deadline = time.monotonic() + self._shutdown_timeout_s
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()) / 2)
        process = self._process
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the telemetry process ------------------------------------------------------------------------


class _Pipelines:
    """The SDK's providers and processors of the signals the worker turned on."""

    def __init__(self, protocols: dict[str, str], resource: Resource, scope_name: str, scope_version: str | None) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._resource = resource
        self._scope = InstrumentationScope(scope_name, scope_version)
        self._shutdowns: list[Any] = []
        self._attributes: dict[tuple[str, str, str], dict[str, str]] = {}
        self.spans: Any = None
        self.requests: Any = None
        self.cpu: Any = None
        self.logger: Any = None
        if "TRACES" in protocols:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            # A bounded queue, exported by its own thread: OTEL_BSP_MAX_QUEUE_SIZE, else
            # SPAN_QUEUE (the SDK's 2048 is a second and a half of a busy worker's spans; this
            # process runs last on a busy machine and catches up in its quiet moments).
            size = None if os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") else SPAN_QUEUE
            self.spans = BatchSpanProcessor(make_exporter("TRACES", protocols["TRACES"]), max_queue_size=size)
            self._shutdowns.append(self.spans.shutdown)
        if "METRICS" in protocols:
            from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            # Every OTEL_METRIC_EXPORT_INTERVAL ms (60 s by default), from the reader's thread. No
            # exemplars unless OTEL_METRICS_EXEMPLAR_FILTER asks (Spin records none).
            reader = PeriodicExportingMetricReader(make_exporter("METRICS", protocols["METRICS"]))
            exemplars = None if os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER") else AlwaysOffExemplarFilter()
            meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False,
                                           exemplar_filter=exemplars)
            meter = meter_provider.get_meter(scope_name, scope_version)
            self.requests = meter.create_counter(names.REQUEST_COUNT, description="Requests an app's route took")
            self.cpu = meter.create_histogram(names.COMPONENT_CPU_TIME, unit="s",
                                              description="CPU time of a component's guest runs")
            self._shutdowns.append(meter_provider.shutdown)
        if "LOGS" in protocols:
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(make_exporter("LOGS", protocols["LOGS"])))
            self.logger = logger_provider.get_logger(scope_name, scope_version)
            self._shutdowns.append(logger_provider.shutdown)

    def _metric_attributes(self, app: str, app_id: str, component_id: str) -> dict[str, str]:
        key = (app, app_id, component_id)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._attributes[key] = {
                names.TRIGGER_TYPE: "http", names.APP_ID: app_id, names.COMPONENT_ID: component_id, names.APP: app,
            }
        return attributes

    def take(self, record: Record) -> None:
        kind = record[0]
        if kind == SPAN:
            if self.spans is not None:
                self.spans.on_end(rebuild_span(record, self._resource, self._scope))
        elif kind == COUNT:
            if self.requests is not None:
                self.requests.add(1, self._metric_attributes(*record[1:4]))
        elif kind == CPU:
            if self.cpu is not None:
                self.cpu.record(record[4], self._metric_attributes(*record[1:4]))
        elif kind == LOG and self.logger is not None:
            self._emit_log(record)

    def _emit_log(self, record: Record) -> None:
        from opentelemetry import trace
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        _, timestamp, body, severity, severity_text, attributes, trace_id, span_id, flags = record
        context = None
        if trace_id:
            context = trace.set_span_in_context(NonRecordingSpan(SpanContext(trace_id, span_id, False,
                                                                             TraceFlags(flags))))
        self.logger.emit(timestamp=timestamp, observed_timestamp=timestamp, context=context,
                         severity_number=SeverityNumber(severity), severity_text=severity_text, body=body,
                         attributes=attributes)

    def shutdown(self) -> None:
        for shutdown in self._shutdowns:
            try:
                shutdown()
            except Exception:  # one signal's failure must not keep the others from flushing
                log.exception("OpenTelemetry: shutting a provider down failed")


def rebuild_span(record: Record, resource: Resource, scope: Any) -> Any:
    """A span record (record.Span.end) as the SDK's ReadableSpan."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    (_, name, trace_id, span_id, parent_id, parent_remote, kind, start, end, attributes, status,
     description) = record
    sampled = TraceFlags(TraceFlags.SAMPLED)
    parent = SpanContext(trace_id, parent_id, parent_remote, sampled) if parent_id else None
    code = StatusCode(status)
    return ReadableSpan(
        name=name, context=SpanContext(trace_id, span_id, False, sampled), parent=parent, resource=resource,
        attributes=attributes, kind=SpanKind(kind),
        status=Status(code, description if code is StatusCode.ERROR and description else None),
        start_time=start, end_time=end, instrumentation_scope=scope,
    )


def main() -> int:
    """The telemetry process: frames from stdin to the SDK, until stdin ends."""
    # Ctrl-C in a terminal reaches the whole process group: this process ends with its worker's
    # pipe instead, after exporting what it was given.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Telemetry comes after requests: when the machine has no CPU to spare, this process falls
    # behind and drops, rather than take CPU from the workers (at its worker's priority, its
    # exports cost the WAT hello benchmark a fifth or more of its throughput on 2 busy cores).
    with contextlib.suppress(OSError):  # (only a privilege would stop it; then it stays as it is)
        os.nice(NICENESS)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    stdin = sys.stdin.buffer
    init = _read_frame(stdin)
    if init is None or init[0] != FORMAT:
        return 1
    _, protocols, attributes, schema_url, (scope_name, scope_version), linger_s = init
    pipelines = _Pipelines(protocols, hashed(Resource(attributes, schema_url)), scope_name, scope_version)
    # Frames are read as they come, whatever the collector does, so the worker's writes never
    # wait for long; when this process falls behind, the oldest frames go.
    pending: deque[list[Record]] = deque(maxlen=MAX_PENDING_FRAMES)
    changed = threading.Condition()
    ended = threading.Event()

    def read() -> None:
        while (frame := _read_frame(stdin)) is not None:
            with changed:
                pending.append(frame)
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
            frame = pending.popleft()
        for record in frame:
            try:
                pipelines.take(record)
            except Exception:  # a bad record must not stop the others
                log.exception("OpenTelemetry: a telemetry record could not be exported")
    pipelines.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
