"""What a worker records of its telemetry: plain tuples in a bounded buffer, which the router's
telemetry process turns into the OpenTelemetry SDK's spans, metric points and log records and
exports (router/telemetry_export.py).

Why not the SDK's objects here: measured in the running server (WAT hello, wrk, same run), the
SDK's two spans per request cost about a fifth of a request's CPU on the event loop, and queueing
them for its batch processor as much again; a record costs a tuple. The sampling decision, the
ids and the W3C context are still OpenTelemetry's (the SDK's sampler from the environment, its id
generator, the API's propagator), so what reaches the collector is what the SDK would have sent.

Nothing here waits: `Sink.put` appends to a deque with a bound, which drops the oldest record
when the telemetry process falls behind.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

# Record kinds (the first item of each record).
SPAN = "span"
COUNT = "count"  # spin.request_count + 1
CPU = "cpu"  # spin.component_cpu_time
LOG = "log"

# SpanKind values as OpenTelemetry numbers them (opentelemetry.trace.SpanKind).
INTERNAL, SERVER, CLIENT = 0, 1, 2
# StatusCode values (opentelemetry.trace.StatusCode).
UNSET, ERROR = 0, 2
SAMPLED = 1  # the W3C trace-flags bit

Record = tuple[Any, ...]


class Sink:
    """The bounded buffer between the worker and its telemetry process."""

    __slots__ = ("dropped", "maxlen", "records", "wake")

    def __init__(self, maxlen: int) -> None:
        self.records: deque[Record] = deque(maxlen=maxlen)
        self.maxlen = maxlen
        self.dropped = 0
        self.wake: Callable[[], None] | None = None  # set by the drainer: a large backlog is due

    def put(self, record: Record) -> None:
        records = self.records
        if len(records) >= self.maxlen:
            self.dropped += 1  # (the deque drops the oldest itself)
        records.append(record)  # atomic under the GIL: from any thread
        if len(records) == self.maxlen // 2 and self.wake is not None:
            self.wake()


class Parent(NamedTuple):
    """A span context a span continues: its trace, the parent span, the trace flags, and whether
    it came from another process (a `traceparent`)."""

    trace_id: int
    span_id: int
    flags: int
    remote: bool


class Span:
    """One span being recorded; `end` puts it in the sink. A span the sampler left out is made too
    (without the sampled flag) so that its children are left out and its context still goes out
    in `traceparent`, as the SDK's non-recording spans do; it puts nothing in the sink."""

    __slots__ = ("_recorder", "attributes", "description", "flags", "kind", "name", "parent", "span_id",
                 "start", "status", "trace_id")

    def __init__(self, recorder: Recorder, name: str, trace_id: int, span_id: int, flags: int,
                 parent: Parent | None, kind: int, attributes: dict[str, Any]) -> None:
        self._recorder = recorder
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.status = UNSET
        self.description = ""
        self.start = time.time_ns()

    @property
    def recording(self) -> bool:
        return bool(self.flags & SAMPLED)

    def as_parent(self) -> Parent:
        return Parent(self.trace_id, self.span_id, self.flags, False)

    def set_error(self, description: str = "") -> None:
        self.status = ERROR
        self.description = description

    def end(self) -> None:
        if not self.flags & SAMPLED:
            return
        parent = self.parent
        self._recorder.sink.put((
            SPAN, self.name, self.trace_id, self.span_id,
            parent.span_id if parent is not None else 0, parent.remote if parent is not None else False,
            self.kind, self.start, time.time_ns(), self.attributes, self.status, self.description,
        ))


class Recorder:
    """Starts spans: sampled as the SDK's sampler from the environment decides (OTEL_TRACES_SAMPLER;
    by default parent-based, always on), with the SDK's ids."""

    def __init__(self, sink: Sink, new_trace_id: Callable[[], int], new_span_id: Callable[[], int],
                 sample: Callable[[Parent | None, int, str, int], bool] | None) -> None:
        self.sink = sink
        self._new_trace_id = new_trace_id
        self._new_span_id = new_span_id
        # None: the default sampler, decided here without a call (a parent's flag, else sampled).
        self._sample = sample

    def start(self, name: str, parent: Parent | None, kind: int, attributes: dict[str, Any]) -> Span:
        trace_id = parent.trace_id if parent is not None else self._new_trace_id()
        sample = self._sample
        if parent is not None and (sample is None or not parent.remote):
            sampled = bool(parent.flags & SAMPLED)  # parent-based: the parent decided
        elif sample is None:
            sampled = True  # a root, always on
        else:
            sampled = sample(parent, trace_id, name, kind)
        return Span(self, name, trace_id, self._new_span_id(), SAMPLED if sampled else 0, parent, kind, attributes)
