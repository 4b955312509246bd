"""What the runtime emits for OpenTelemetry: spans, metrics and guest-output log records, named as
Spin names them, plus an ``app`` attribute (the name the router serves the app under).

Off unless the router turns it on: router/telemetry.py reads the ``OTEL_*`` variables at worker
start, starts the worker's telemetry process and calls :func:`install`. Until then the switches
below are ``None``/``False`` and the request path does no telemetry work at all: one module
attribute test per hook. This module imports no OpenTelemetry package, so a server with telemetry
off never loads one.

Spans, metric points and log records are recorded as plain tuples (runtime/telemetry/record.py)
that the telemetry process makes into the SDK's objects and exports: the worker's event loop, which
serves every request, pays for a tuple, not for the SDK's objects and their encoding.

How a request's spans find their parent without ambient state on guest threads: the HTTP trigger
(runtime/http/app.py, on the event loop) makes a :class:`RequestTelemetry` from the request: the
span it continues (the router's server span, which the router hands over in :data:`SERVED` for
the request's task, or else a ``traceparent`` an in-process caller injected) and the app's name.
The run (runtime/http/scheduling.py, on whichever thread runs the guest) opens the wasm execution
span under it and puts a :class:`Run` in the request's RequestContext under :data:`RUN`; host
calls of that guest (key-value, sqlite, variables, outbound HTTP) read it there and open their
spans as its children.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.core.context import StateKey

if TYPE_CHECKING:
    from runtime.telemetry.logs import GuestLogs
    from runtime.telemetry.metrics import Instruments
    from runtime.telemetry.record import Parent, Recorder, Span

# The switches (see the module docstring). Read them as `telemetry.recorder` etc., never imported
# by name: install() rebinds them.
recorder: Recorder | None = None  # traces on
instruments: Instruments | None = None  # metrics on
guest_logs: GuestLogs | None = None  # logs on (guest stdout/stderr as log records)
active = False  # any of the three: a request carries a RequestTelemetry


@dataclass(frozen=True, slots=True)
class RequestTelemetry:
    """What a request's run needs to report: the app it is served as, and the span context its
    wasm execution span continues (None when traces are off or the request starts a trace)."""

    app: str
    parent: Parent | None


@dataclass(slots=True)
class Run:
    """One guest run, as its host calls see it: the app's name, the wasm execution span (None when
    traces are off or the trace is not sampled) and the context it continued."""

    app: str
    span: Span | None
    parent: Parent | None = None


RUN: StateKey[Run] = StateKey("telemetry.run")


@dataclass(slots=True)
class Served:
    """The host's own span of the request being served (the router's server span), as its serving
    task sees it: the parent of the wasm execution span, and the route the app matched, which the
    host names its span after when the request ends (as Spin's MatchedRoute)."""

    span: Span
    route: str | None = None


# Set by the router around one request's handling, in that request's task only: an in-process
# call runs in a task of its own and continues its caller's traceparent instead.
SERVED: ContextVar[Served | None] = ContextVar("lepton_served", default=None)


def install(*, recorder: Recorder | None = None, instruments: Instruments | None = None,
            guest_logs: GuestLogs | None = None) -> None:
    """Turn the given signals on, process-wide (router/telemetry.py, at worker start, before any
    app loads: host functions are wrapped for tracing when an app links)."""
    module = globals()
    module["recorder"] = recorder
    module["instruments"] = instruments
    module["guest_logs"] = guest_logs
    module["active"] = recorder is not None or instruments is not None or guest_logs is not None


def uninstall() -> None:
    """Everything off again (tests, and the worker's exit)."""
    install()
