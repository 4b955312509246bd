"""OpenTelemetry for `lepton-router serve`: off unless the standard variables switch it on, read as
Spin reads them (crates/telemetry/src/env.rs), and exported with the OpenTelemetry SDK's OTLP
exporters. Each worker process calls :func:`setup` at start and exports on its own.

* A signal is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or its own ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``
  (TRACES, METRICS, LOGS) is set and not empty, unless ``OTEL_SDK_DISABLED`` is set and not empty
  (any value: Spin does not look at it).
* The protocol is ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
  ``http/protobuf``; an unknown value is warned about and means ``http/protobuf``. ``grpc`` needs
  the optional ``opentelemetry-exporter-otlp-proto-grpc``; ``http/json`` is refused, as Spin
  refuses it. Either way that signal stays off and the server serves on (Spin would not start).
* ``service.name`` is ``OTEL_SERVICE_NAME``, else the one in ``OTEL_RESOURCE_ATTRIBUTES``, else
  ``lepton-router`` (Spin's default is ``spin``). The exporters read the rest of the standard
  variables themselves (headers, compression, certificates, the timeout).

Exporting never holds a request up: spans and log records go to bounded batch queues that a
background thread drains (a full queue drops the oldest), spans on to an exporter process of the
worker's own (router/telemetry_export.py: encoding them would take turns with requests for the
GIL), metrics are aggregated in memory and exported by a reader thread, and each export gives up
after telemetry_export.EXPORT_TIMEOUT_S unless ``OTEL_EXPORTER_OTLP[_<SIGNAL>]_TIMEOUT`` says
otherwise. At exit the pending telemetry gets SHUTDOWN_TIMEOUT_S to go out; a collector that is
down or slow loses it rather than holding the worker.

The server span of each request is made in router/dispatch.py (:func:`server_span`); the runtime
adds the wasm execution span, host API spans, outbound client spans, the metrics and guest output
log records (runtime/telemetry/).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import runtime.telemetry as telemetry
from runtime.telemetry import names

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import Span

    from router.proxy import ClientView

log = logging.getLogger("lepton.telemetry")

SIGNALS = ("TRACES", "METRICS", "LOGS")
DEFAULT_PROTOCOL = "http/protobuf"
PROTOCOLS = ("grpc", "http/protobuf", "http/json")
DEFAULT_SERVICE_NAME = "lepton-router"
SHUTDOWN_TIMEOUT_S = 5.0  # for everything pending at exit, all signals together


def _set(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name))  # set and not empty, as Spin's any_vars_set


def enabled(environ: Mapping[str, str], signal: str) -> bool:
    """Whether `signal` (TRACES, METRICS or LOGS) is on (Spin's otel_<signal>_enabled)."""
    if _set(environ, "OTEL_SDK_DISABLED"):
        return False
    return _set(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or _set(environ, f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")


def protocol(environ: Mapping[str, str], signal: str) -> str:
    """The OTLP protocol for `signal` (Spin's OtlpProtocol::<signal>_protocol_from_env)."""
    value = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
    if value is None:
        value = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", DEFAULT_PROTOCOL)
    if value not in PROTOCOLS:
        log.warning("'%s' is not a valid OTLP protocol, defaulting to %s", value, DEFAULT_PROTOCOL)
        return DEFAULT_PROTOCOL
    return value


@dataclass(frozen=True)
class Setup:
    """What :func:`setup` turned on, and how it flushes at exit."""

    signals: tuple[str, ...]
    shutdown: Callable[[], None]


def setup() -> Setup | None:
    """Turn on the signals the environment asks for, in this process (at worker start, before any
    app loads). None when none is on: nothing is imported or started."""
    environ = os.environ
    wanted = [s for s in SIGNALS if enabled(environ, s)]
    if not wanted:
        return None
    from router import telemetry_export as export

    resource = _resource(environ)
    tracer = instruments = guest_logger = None
    providers: list[Any] = []
    on: list[str] = []
    for signal in wanted:
        proto = protocol(environ, signal)
        if not export.supported(signal, proto):
            continue
        if signal == "TRACES":
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            # Bounded queue (OTEL_BSP_MAX_QUEUE_SIZE, 2048 by default), drained by its own thread
            # into the exporter process.
            trace_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            pipe = export.PipeSpanExporter(proto, resource, (names.SCOPE, _version()), SHUTDOWN_TIMEOUT_S - 1)
            trace_provider.add_span_processor(BatchSpanProcessor(pipe))
            tracer = trace_provider.get_tracer(names.SCOPE, _version())
            providers.append(trace_provider)
        elif signal == "METRICS":
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            from runtime.telemetry.metrics import Instruments

            # Every OTEL_METRIC_EXPORT_INTERVAL ms (60 s by default), from the reader's thread.
            reader = PeriodicExportingMetricReader(export.make_exporter(signal, proto))
            meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False,
                                           exemplar_filter=_exemplar_filter(environ))
            instruments = Instruments(meter_provider.get_meter(names.SCOPE, _version()))
            providers.append(meter_provider)
        else:
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(export.make_exporter(signal, proto)))
            guest_logger = logger_provider.get_logger(names.SCOPE, _version())
            providers.append(logger_provider)
        on.append(signal.lower())
    if not on:
        return None
    telemetry.install(tracer=tracer, instruments=instruments, guest_logger=guest_logger)
    # The batch processors log "Queue full, dropping Span." for every span a full queue drops,
    # which (a LogRecord, its caller's frame) would make each request pay while the collector is
    # down; the exporter's own failures are still logged, once per export.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    service = resource.attributes.get("service.name")
    log.info("OpenTelemetry on (%s) for service %s", ", ".join(on), service)
    done = Setup(tuple(on), lambda: _shutdown(providers))
    atexit.register(done.shutdown)
    return done


def _exemplar_filter(environ: Mapping[str, str]) -> Any:
    """No exemplars unless OTEL_METRICS_EXEMPLAR_FILTER asks for them: Spin records none, and
    looking for one costs every measurement a context look-up."""
    if environ.get("OTEL_METRICS_EXEMPLAR_FILTER"):
        return None  # the SDK reads it
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    return AlwaysOffExemplarFilter()


def _resource(environ: Mapping[str, str]) -> Resource:
    from opentelemetry.sdk.resources import Resource

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; what it found wins.
    # Each worker is its own instance: its counters are its own series.
    attributes: dict[str, Any] = {"service.version": _version(), "service.instance.id": str(uuid.uuid4())}
    resource = Resource.create(attributes)
    found = Resource.create({})
    if str(found.attributes.get("service.name", "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    if "service.instance.id" in found.attributes:
        resource = resource.merge(Resource({"service.instance.id": found.attributes["service.instance.id"]}))
    from router.telemetry_export import hashed

    return hashed(resource)


def _version() -> str:
    try:
        return metadata.version("lepton-router")
    except metadata.PackageNotFoundError:
        return "0"


def _shutdown(providers: list[Any]) -> None:
    """Flush and stop every provider, each on its own thread, for SHUTDOWN_TIMEOUT_S at most in
    all: a collector that does not answer must not hold the worker's exit."""
    telemetry.uninstall()
    threads = [threading.Thread(target=p.shutdown, name="lepton-otel-shutdown", daemon=True) for p in providers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        log.warning("OpenTelemetry: the collector did not take the last telemetry in time; dropped")


# -- the server span (router/dispatch.py) -------------------------------------------------------


class ServerSpan:
    """The span of one request the router serves (Spin's spin_trigger_http.handle_http_request).
    While the request is handled it is the runtime's telemetry.SERVED in the request's task: the
    wasm execution span becomes its child, and the runtime notes the route the app matched, which
    names the span (``GET /hello/...``) when it ends."""

    __slots__ = ("_method", "_served", "_span", "_token")

    def __init__(self, span: Span, method: str, served: telemetry.Served) -> None:
        self._span = span
        self._method = method
        self._served = served
        self._token = telemetry.SERVED.set(served)

    def finish(self, status: int) -> None:
        telemetry.SERVED.reset(self._token)
        span = self._span
        route = self._served.route
        attributes: dict[str, Any] = {names.HTTP_RESPONSE_STATUS_CODE: status}
        if route is not None:
            attributes[names.HTTP_ROUTE] = route
            span.update_name(f"{self._method} {route}")
        if status >= 500:  # a server span is an error only for a 5xx (OpenTelemetry's HTTP rules)
            from opentelemetry.trace import Status, StatusCode

            attributes[names.ERROR_TYPE] = str(status)
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(attributes)
        span.end()


def server_span(scope: Mapping[str, Any], headers: Sequence[tuple[str, bytes]], view: ClientView, path: str,
                app: str) -> ServerSpan | None:
    """Start the server span of a request `app` serves (None when traces are off), continuing the
    client's W3C ``traceparent`` if it sent one."""
    tracer = telemetry.tracer
    if tracer is None:
        return None
    in_context, server_kind, extract = _api or _load_api()
    method = scope["method"]
    # Spin's attributes (trigger-http/src/instrument.rs) that OpenTelemetry's HTTP conventions
    # require or recommend, with the trusted client address (Spin copies X-Forwarded-For as sent)
    # and `app`. Spin's network.peer.* and network.protocol.name ("http", which the conventions
    # say to leave out) are not recorded: every attribute costs every request, here and in the
    # export.
    attributes: dict[str, Any] = {
        names.APP: app,
        names.HTTP_REQUEST_METHOD: method,
        names.URL_PATH: path,
        names.URL_SCHEME: view.scheme,
        names.CLIENT_ADDRESS: view.addr[0],
    }
    query = scope.get("query_string")
    if query:
        attributes[names.URL_QUERY] = query.decode("latin-1")
    span = tracer.start_span(method, context=extract(headers), kind=server_kind, attributes=attributes)
    return ServerSpan(span, method, telemetry.Served(in_context(span)))


_api: tuple[Any, Any, Any] | None = None  # what server_span uses of OpenTelemetry, loaded once


def _load_api() -> tuple[Any, Any, Any]:
    global _api
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    from runtime.telemetry.spans import extract

    _api = (trace.set_span_in_context, SpanKind.SERVER, extract)
    return _api
