"""An OTLP/HTTP receiver for tests: what a collector would get from the server, decoded with the
OpenTelemetry protobuf definitions (package `opentelemetry-proto`).

* `OtlpReceiver().start()`: a threaded HTTP server on 127.0.0.1 taking POST /v1/traces,
  /v1/metrics and /v1/logs (protobuf, gzip or not), as an OTLP collector does. Its `.endpoint`
  goes in OTEL_EXPORTER_OTLP_ENDPOINT. `.spans()`, `.metric_points()` and `.log_records()` are
  what arrived, flattened into plain dataclasses; `.wait_for(predicate, timeout, what)` polls.
* `SilentListener().start()`: a socket that listens and never answers (not even accepting), for
  the collector that is down in a way that holds every export until its timeout.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind: SPAN_KIND_SERVER
CLIENT_KIND = 3
INTERNAL_KIND = 1
STATUS_ERROR = 2  # Status.StatusCode: STATUS_CODE_ERROR


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    resource: dict[str, Any] = field(repr=False)
    scope: str = ""


@dataclass
class MetricPoint:
    name: str
    attributes: dict[str, Any]
    value: float  # a sum's value, or a histogram's count
    total: float  # a histogram's sum (the value again for a sum)
    unit: str
    resource: dict[str, Any] = field(repr=False)


@dataclass
class LogRecord:
    body: Any
    attributes: dict[str, Any]
    severity_text: str
    trace_id: str
    span_id: str
    resource: dict[str, Any] = field(repr=False)


class OtlpReceiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._points: list[MetricPoint] = []
        self._logs: list[LogRecord] = []
        self.posts: dict[str, int] = {}
        self.errors: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length)
                encoding = (self.headers.get("content-encoding") or "").lower()
                try:
                    if encoding == "gzip":
                        data = gzip.decompress(data)
                    elif encoding == "deflate":
                        data = zlib.decompress(data)
                    answer = receiver._take(self.path, data)
                except Exception as exc:  # a test must see a payload it cannot decode
                    receiver.errors.append(f"{self.path}: {exc!r}")
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, path: str, data: bytes) -> bytes:
        with self._lock:
            self.posts[path] = self.posts.get(path, 0) + 1
        if path == "/v1/traces":
            traces = ExportTraceServiceRequest.FromString(data)
            spans = [
                Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                     attributes_of(s.attributes), s.status.code, s.status.message,
                     attributes_of(rs.resource.attributes), ss.scope.name)
                for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans
            ]
            with self._lock:
                self._spans += spans
            return ExportTraceServiceResponse().SerializeToString()
        if path == "/v1/metrics":
            metrics = ExportMetricsServiceRequest.FromString(data)
            points = []
            for rm in metrics.resource_metrics:
                resource = attributes_of(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        if kind == "sum":
                            points += [MetricPoint(metric.name, attributes_of(p.attributes), p.as_int or p.as_double,
                                                   p.as_int or p.as_double, metric.unit, resource)
                                       for p in metric.sum.data_points]
                        elif kind == "histogram":
                            points += [MetricPoint(metric.name, attributes_of(p.attributes), p.count, p.sum,
                                                   metric.unit, resource)
                                       for p in metric.histogram.data_points]
            with self._lock:
                self._points += points
            return ExportMetricsServiceResponse().SerializeToString()
        if path == "/v1/logs":
            logs = ExportLogsServiceRequest.FromString(data)
            records = [
                LogRecord(value_of(r.body), attributes_of(r.attributes), r.severity_text, r.trace_id.hex(),
                          r.span_id.hex(), attributes_of(rl.resource.attributes))
                for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records
            ]
            with self._lock:
                self._logs += records
            return ExportLogsServiceResponse().SerializeToString()
        raise ValueError(f"not an OTLP path: {path}")

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def metric_points(self) -> list[MetricPoint]:
        with self._lock:
            return list(self._points)

    def log_records(self) -> list[LogRecord]:
        with self._lock:
            return list(self._logs)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; received {self.posts}, "
                             f"spans {[s.name for s in self.spans()]}, errors {self.errors}")


class SilentListener:
    """A loopback port that accepts TCP handshakes (the kernel's backlog) and never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SilentListener:
        self._sock.listen(64)
        return self

    def stop(self) -> None:
        self._sock.close()
