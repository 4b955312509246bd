"""Guest stdout/stderr as OpenTelemetry log records, when logs are on: one record per line (the
lines runtime/capabilities/wasi/cli.py already logs), with ``component_id`` as Spin's app logs have
it, ``app``, the stream, and the run's span context so a collector ties each line to its request.
Recorded as tuples for the telemetry process (runtime/telemetry/record.py): never a wait."""

from __future__ import annotations

import time
from collections.abc import Callable

import runtime.telemetry as telemetry
from runtime.core.context import RequestContext
from runtime.telemetry import names
from runtime.telemetry.record import LOG, Sink

# OpenTelemetry's severity numbers (opentelemetry._logs.SeverityNumber): INFO and WARN.
_SEVERITY = {"stdout": (9, "INFO"), "stderr": (13, "WARN")}


class GuestLogs:
    __slots__ = ("sink",)

    def __init__(self, sink: Sink) -> None:
        self.sink = sink


def guest_output(ctx: RequestContext, stream: str) -> Callable[[str], None] | None:
    """An emitter of `stream`'s lines ("stdout" or "stderr") for this run; None when logs are off."""
    logs = telemetry.guest_logs
    if logs is None:
        return None
    sink = logs.sink
    run = ctx.get(telemetry.RUN)
    attributes = {
        names.COMPONENT_ID: ctx.component.id,
        names.APP: run.app if run is not None else (ctx.app.name or ""),
        names.LOG_IOSTREAM: stream,
    }
    span = run.span if run is not None else None
    trace_id, span_id, flags = (span.trace_id, span.span_id, span.flags) if span is not None else (0, 0, 0)
    number, text = _SEVERITY.get(stream, _SEVERITY["stdout"])

    def emit(line: str) -> None:
        sink.put((LOG, time.time_ns(), line, number, text, attributes, trace_id, span_id, flags))

    return emit
