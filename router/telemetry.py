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
  ``lepton-router`` (Spin's default is ``spin``). The exporters and the SDK read the rest of the
  standard variables themselves (headers, compression, certificates, the timeout, the sampler,
  batch sizes and delays, the metric interval).

The worker records its spans, metric points and log lines as tuples (runtime/telemetry/record.py)
and its telemetry process makes them into the SDK's objects and exports them
(router/telemetry_export.py): exporting never holds a request up, nor takes turns with requests
for the worker's GIL. At exit the pending telemetry gets SHUTDOWN_TIMEOUT_S to go out; a collector
that is down or slow loses it rather than holding the worker.

The server span of each request is made in router/dispatch.py (:func:`server_span`); the runtime
adds the wasm execution span, host API spans, outbound client spans, the metrics and guest output
log records (runtime/telemetry/).
"""

from __future__ import annotations

import atexit
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import runtime.telemetry as telemetry
from runtime.telemetry import names
from runtime.telemetry.record import SERVER

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from router.proxy import ClientView
    from runtime.telemetry.record import Parent, Span

log = logging.getLogger("lepton.telemetry")

SIGNALS = ("TRACES", "METRICS", "LOGS")
DEFAULT_PROTOCOL = "http/protobuf"
PROTOCOLS = ("grpc", "http/protobuf", "http/json")
DEFAULT_SERVICE_NAME = "lepton-router"
SHUTDOWN_TIMEOUT_S = 5.0  # for everything pending at exit, all signals together
SINK_RECORDS = 16384  # records the worker holds for its telemetry process before dropping the oldest


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
    app loads): start its telemetry process and install the runtime's recorders. None when none
    is on: nothing is imported or started."""
    environ = os.environ
    wanted = [s for s in SIGNALS if enabled(environ, s)]
    if not wanted:
        return None
    from router import telemetry_export as export

    protocols = {s: protocol(environ, s) for s in wanted}
    protocols = {s: p for s, p in protocols.items() if export.supported(s, p)}
    if not protocols:
        return None
    from runtime.telemetry.logs import GuestLogs
    from runtime.telemetry.metrics import Instruments
    from runtime.telemetry.record import Recorder, Sink

    resource = _resource()
    sink = Sink(SINK_RECORDS)
    process = export.TelemetryProcess(sink, protocols, resource, (names.SCOPE, _version()), SHUTDOWN_TIMEOUT_S)
    recorder = None
    if "TRACES" in protocols:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        ids = RandomIdGenerator()
        recorder = Recorder(sink, ids.generate_trace_id, ids.generate_span_id, _sampler())
    telemetry.install(recorder=recorder, instruments=Instruments(sink) if "METRICS" in protocols else None,
                      guest_logs=GuestLogs(sink) if "LOGS" in protocols else None)
    on = tuple(s.lower() for s in protocols)
    log.info("OpenTelemetry on (%s) for service %s", ", ".join(on), resource.attributes.get("service.name"))

    def shutdown() -> None:
        telemetry.uninstall()
        process.shutdown()

    done = Setup(on, shutdown)
    atexit.register(done.shutdown)
    return done


def _sampler() -> Callable[[Parent | None, int, str, int], bool] | None:
    """The SDK's sampler as OTEL_TRACES_SAMPLER configures it, as a decision function; None for
    the default (parent-based, always on), which the recorder decides without a call."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider, sampling
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

    sampler = TracerProvider(shutdown_on_exit=False).sampler  # (reads the environment)
    if sampler.get_description() == sampling.ParentBased(sampling.ALWAYS_ON).get_description():
        return None

    def sample(parent: Parent | None, trace_id: int, name: str, kind: int) -> bool:
        context = None
        if parent is not None:
            span = NonRecordingSpan(SpanContext(parent.trace_id, parent.span_id, parent.remote,
                                                TraceFlags(parent.flags)))
            context = trace.set_span_in_context(span)
        return sampler.should_sample(context, trace_id, name, SpanKind(kind)).decision.is_sampled()

    return sample


def _resource() -> Resource:
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
    return resource


def _version() -> str:
    try:
        return metadata.version("lepton-router")
    except metadata.PackageNotFoundError:
        return "0"


# -- the server span (router/dispatch.py) -------------------------------------------------------


class ServerSpan:
    """The span of one request the router serves (Spin's spin_trigger_http.handle_http_request).
    While the request is handled it is the runtime's telemetry.SERVED in the request's task: the
    wasm execution span becomes its child, and the runtime notes the route the app matched, which
    names the span (``GET /hello/...``) when it ends."""

    __slots__ = ("_served", "_token")

    def __init__(self, span: Span) -> None:
        self._served = telemetry.Served(span)
        self._token = telemetry.SERVED.set(self._served)

    def finish(self, status: int) -> None:
        telemetry.SERVED.reset(self._token)
        served = self._served
        span = served.span
        attributes = span.attributes
        attributes[names.HTTP_RESPONSE_STATUS_CODE] = status
        if served.route is not None:
            attributes[names.HTTP_ROUTE] = served.route
            span.name = f"{span.name} {served.route}"
        if status >= 500:  # a server span is an error only for a 5xx (OpenTelemetry's HTTP rules)
            attributes[names.ERROR_TYPE] = str(status)
            span.set_error()
        span.end()


def server_span(scope: Mapping[str, Any], headers: Sequence[tuple[str, bytes]], view: ClientView, path: str,
                app: str) -> ServerSpan | None:
    """Start the server span of a request `app` serves (None when traces are off), continuing the
    client's W3C ``traceparent`` if it sent one."""
    recorder = telemetry.recorder
    if recorder is None:
        return None
    extract = _extract or _load_extract()
    method = scope["method"]
    # Spin's attributes (trigger-http/src/instrument.rs) that OpenTelemetry's HTTP conventions
    # require or recommend, with the trusted client address (Spin copies X-Forwarded-For as sent)
    # and `app`. Spin's network.peer.* and network.protocol.name ("http", which the conventions
    # say to leave out) are not recorded: every attribute costs every request.
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
    return ServerSpan(recorder.start(method, extract(headers), SERVER, attributes))


_extract: Callable[[Sequence[tuple[str, bytes]]], Parent | None] | None = None  # loaded with the first span


def _load_extract() -> Callable[[Sequence[tuple[str, bytes]]], Parent | None]:
    global _extract
    from runtime.telemetry.spans import extract

    _extract = extract
    return extract
