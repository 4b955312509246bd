"""Guest stdout/stderr as OpenTelemetry log records, when logs are on: one record per line (the
lines runtime/capabilities/wasi/cli.py already logs), with ``component_id`` as Spin's app logs have
it, ``app``, the stream, and the run's span context so a collector ties each line to its request.
Emitting hands the record to the SDK's batch processor: it never waits on the collector."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry._logs import SeverityNumber

import runtime.telemetry as telemetry
from runtime.core.context import RequestContext
from runtime.telemetry import names

_SEVERITY = {"stdout": (SeverityNumber.INFO, "INFO"), "stderr": (SeverityNumber.WARN, "WARN")}


def guest_output(ctx: RequestContext, stream: str) -> Callable[[str], None] | None:
    """An emitter of `stream`'s lines ("stdout" or "stderr") for this run; None when logs are off."""
    logger = telemetry.guest_logger
    if logger is None:
        return None
    run = ctx.get(telemetry.RUN)
    attributes = {
        names.COMPONENT_ID: ctx.component.id,
        names.APP: run.app if run is not None else (ctx.app.name or ""),
        names.LOG_IOSTREAM: stream,
    }
    parent = None
    if run is not None and run.span is not None:
        from runtime.telemetry.spans import run_context  # (traces are on: it is loaded)

        parent = run_context(run)
    number, text = _SEVERITY.get(stream, _SEVERITY["stdout"])

    def emit(line: str) -> None:
        logger.emit(body=line, severity_number=number, severity_text=text, attributes=attributes, context=parent)

    return emit
