"""What the runtime emits for OpenTelemetry: spans, metrics and guest-output log records, named as
Spin names them, plus an ``app`` attribute (the name the router serves the app under).

Off unless the router turns it on: router/telemetry.py reads the ``OTEL_*`` variables at worker
start, builds the SDK's providers and exporters and calls :func:`install`. Until then the switches
below are ``None``/``False`` and the request path does no telemetry work at all: one module
attribute test per hook. This module imports no OpenTelemetry package, so a server with telemetry
off never loads one; the helpers that use the OpenTelemetry API live in ``spans``, ``metrics`` and
``logs`` and are imported only once a switch is on.

How a request's spans find their parent without ambient state on guest threads: the HTTP trigger
(runtime/http/app.py, on the event loop) makes a :class:`RequestTelemetry` from the request: the
span context it continues (the router's server span, which the router hands over in
:data:`SERVED` for the request's task, or else a ``traceparent`` an in-process caller injected)
and the app's name. The run (runtime/http/scheduling.py, on whichever thread runs the
guest) opens the wasm execution span under it and puts a :class:`Run` in the request's
RequestContext under :data:`RUN`; host calls of that guest (key-value, sqlite, variables, outbound
HTTP) read it there and open their spans as its children.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.core.context import StateKey

if TYPE_CHECKING:
    from opentelemetry._logs import Logger
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from runtime.telemetry.metrics import Instruments

# The switches (see the module docstring). Read them as `telemetry.tracer` etc., never imported by
# name: install() rebinds them.
tracer: Tracer | None = None  # traces on
instruments: Instruments | None = None  # metrics on
guest_logger: Logger | None = None  # logs on (guest stdout/stderr as log records)
active = False  # any of the three: a request carries a RequestTelemetry


@dataclass(frozen=True, slots=True)
class RequestTelemetry:
    """What a request's run needs to report: the app it is served as, and the span context its
    wasm execution span continues (None when traces are off)."""

    app: str
    parent: Context | None


@dataclass(slots=True)
class Run:
    """One guest run, as its host calls see it: the app's name, the wasm execution span (None when
    traces are off) and the context it continues; spans.run_context makes the span a parent
    context when a host call first needs one (most runs make none)."""

    app: str
    span: Span | None
    parent: Context | None = None
    context: Context | None = None


RUN: StateKey[Run] = StateKey("telemetry.run")


@dataclass(slots=True)
class Served:
    """The host's own span of the request being served (the router's server span), as its serving
    task sees it: the context the wasm execution span continues, and the route the app matched,
    which the host names its span after when the request ends (as Spin's MatchedRoute)."""

    context: Context
    route: str | None = None


# Set by the router around one request's handling, in that request's task only: an in-process
# call runs in a task of its own and continues its caller's traceparent instead.
SERVED: ContextVar[Served | None] = ContextVar("lepton_served", default=None)


def install(*, tracer: Tracer | None = None, instruments: Instruments | None = None,
            guest_logger: Logger | None = None) -> None:
    """Turn the given signals on, process-wide (router/telemetry.py, at worker start, before any
    app loads: host functions are wrapped for tracing when an app links)."""
    module = globals()
    module["tracer"] = tracer
    module["instruments"] = instruments
    module["guest_logger"] = guest_logger
    module["active"] = tracer is not None or instruments is not None or guest_logger is not None


def uninstall() -> None:
    """Everything off again (tests)."""
    install()
