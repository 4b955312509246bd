"""The runtime's spans, named as Spin names them (runtime/telemetry/names.py), recorded with
runtime/telemetry/record.py. Imported only once traces are on (runtime/telemetry/__init__.py says
how a span finds its parent).

* the wasm execution span, ``execute_wasm_component <id>`` (WAGI: ``execute_wagi_component <id>``),
  a child of the router's server span or of an in-process caller's client span;
* host API spans (``spin_key_value.get``, ``spin_sqlite.execute``, ``spin_variables.get``, ...),
  children of the execution span: :func:`wrap` puts a host function in its span (hooks.traced
  decides at link time whether to);
* outbound HTTP client spans, named by the method as Spin's are, whose context goes out in a W3C
  ``traceparent`` header (:func:`outbound_start`, :func:`inject`, :func:`outbound_end`). The header
  is made and read by the OpenTelemetry API's W3C propagator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import runtime.telemetry as telemetry
from runtime.core import context
from runtime.core.context import RequestContext
from runtime.telemetry import names
from runtime.telemetry.names import APP
from runtime.telemetry.record import CLIENT, INTERNAL, Parent, Span

if TYPE_CHECKING:
    from runtime.telemetry.hooks import HostFunc, HostSpan

PROPAGATOR = TraceContextTextMapPropagator()  # W3C trace context, as Spin propagates it
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_WAGI_EXECUTORS = frozenset({"spin-wagi", "spin-wagi-component"})


def extract(headers: Sequence[tuple[str, bytes]]) -> Parent | None:
    """The W3C trace context incoming headers continue, if they carry a valid one."""
    carrier = {name: value.decode("latin-1") for name, value in headers if name in _TRACE_HEADERS}
    if not carrier:
        return None
    found = trace.get_current_span(PROPAGATOR.extract(carrier, context=Context())).get_span_context()
    if not found.is_valid:
        return None
    return Parent(found.trace_id, found.span_id, int(found.trace_flags), True)


def request_telemetry(headers: Sequence[tuple[str, bytes]], app: str) -> telemetry.RequestTelemetry:
    """On the event loop, for a request about to run: the span its execution span continues. The
    router's server span when the router serves this request (telemetry.SERVED); otherwise a
    ``traceparent`` the request carries (an in-process call: the caller's client span)."""
    if telemetry.recorder is None:
        return telemetry.RequestTelemetry(app, None)
    served = telemetry.SERVED.get()
    if served is not None:
        return telemetry.RequestTelemetry(app, served.span.as_parent())
    return telemetry.RequestTelemetry(app, extract(headers))


def note_route(route: str) -> None:
    """The app matched `route`: the router's server span of this request, if it has one, is
    named and attributed with it when it ends, as Spin's finalize_http_span does."""
    served = telemetry.SERVED.get()
    if served is not None:
        served.route = route


# -- the wasm execution span --------------------------------------------------------------------


def begin_run(request: telemetry.RequestTelemetry, ctx: RequestContext, executor: str) -> telemetry.Run:
    """Open the run's execution span (on the thread that runs the guest) and put the run where the
    guest's host calls find it."""
    recorder = telemetry.recorder
    span = None
    if recorder is not None:
        component_id = ctx.component.id
        name = names.EXECUTE_WAGI if executor in _WAGI_EXECUTORS else names.EXECUTE_WASM
        # (Its name says the component; `app` is the one attribute.)
        span = recorder.start(f"{name} {component_id}", request.parent, INTERNAL, {APP: request.app})
    run = telemetry.Run(request.app, span, request.parent)
    ctx.set(telemetry.RUN, run)
    return run


def end_run(run: telemetry.Run, error: BaseException | None) -> None:
    span = run.span
    if span is not None:
        if error is not None:
            span.set_error(_first_line(error))
        span.end()


# -- host API spans -----------------------------------------------------------------------------


def wrap(fn: HostFunc, spec: HostSpan) -> HostFunc:
    """`fn` in its span (runtime/telemetry/hooks.py `traced` decides whether to wrap at all)."""
    fixed = {**spec.attributes}

    def call(store: Any, *args: Any) -> Any:
        recorder = telemetry.recorder
        ctx = context.current_or_none()
        run = ctx.get(telemetry.RUN) if ctx is not None else None
        if recorder is None or run is None or run.span is None or not run.span.recording:
            return fn(store, *args)
        attributes = {APP: run.app, **fixed}
        if spec.from_args is not None:
            attributes.update(spec.from_args(args))
        span = recorder.start(spec.name, run.span.as_parent(), CLIENT, attributes)
        try:
            result = fn(store, *args)
        except BaseException as exc:
            span.set_error(_first_line(exc))
            span.end()
            raise
        error = error_case(result)
        if error is not None:
            span.set_error(error)
        span.end()
        return result

    return call


def error_case(result: Any) -> str | None:
    """The error case's name when a host function returned a WIT `err` (support.wit.err)."""
    if getattr(result, "tag", None) != "err":
        return None
    tag = getattr(getattr(result, "payload", None), "tag", None)
    return str(tag) if tag is not None else "error"


# -- outbound HTTP ------------------------------------------------------------------------------


def outbound_start(ctx: RequestContext, method: str, url: str) -> Span | None:
    """A client span for an outbound request from this run (Spin: spin_outbound_http.send_request,
    exported under the method's name), or None when the run is not traced. `url` is the full URL
    (or a path, for a request to the app itself); the query is left out of ``url.full``, as our
    logs leave it out: it may carry secrets. A run the sampler left out gets a span that records
    nothing, so its traceparent still says so downstream."""
    recorder = telemetry.recorder
    run = ctx.get(telemetry.RUN)
    if recorder is None or run is None or run.span is None:
        return None
    shown = url.split("?", 1)[0]
    attributes: dict[str, Any] = {APP: run.app, names.HTTP_REQUEST_METHOD: method, names.URL_FULL: shown}
    if not url.startswith("/"):
        try:
            parts = urlsplit(shown)
            if parts.hostname:
                attributes[names.SERVER_ADDRESS] = parts.hostname
            if parts.port is not None:
                attributes[names.SERVER_PORT] = parts.port
        except ValueError:
            pass  # the request fails on its own; the span still says what was asked
    return recorder.start(method, run.span.as_parent(), CLIENT, attributes)


def traceparent(span: Span) -> list[tuple[str, str]]:
    """The W3C headers carrying `span`, made by the OpenTelemetry API's propagator."""
    carrier: dict[str, str] = {}
    remote = NonRecordingSpan(SpanContext(span.trace_id, span.span_id, False, TraceFlags(span.flags)))
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(remote))
    return list(carrier.items())


def inject(headers: list[tuple[str, bytes]], span: Span) -> list[tuple[str, bytes]]:
    """`headers` with the span's ``traceparent`` (replacing any the guest set, as Spin does)."""
    kept = [(k, v) for k, v in headers if k.lower() not in _TRACE_HEADERS]
    return kept + [(k, v.encode("latin-1")) for k, v in traceparent(span)]


def inject_text(headers: list[tuple[str, str]], span: Span) -> list[tuple[str, str]]:
    """:func:`inject` for headers with text values (fermyon:spin/http)."""
    return [(k, v) for k, v in headers if k.lower() not in _TRACE_HEADERS] + traceparent(span)


def outbound_end(span: Span, status: int | None = None, error: str | None = None) -> None:
    """Close an outbound span: the response status, or the error case the guest got."""
    if status is not None:
        span.attributes[names.HTTP_RESPONSE_STATUS_CODE] = status
    if error is not None:
        span.attributes[names.ERROR_TYPE] = error
        span.set_error(error)
    span.end()


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200] if text else type(error).__name__
