"""The runtime's metrics, named as Spin names them (runtime/telemetry/names.py), on a Meter the
router hands over when metrics are on. Recording is in memory (the SDK aggregates; a reader
thread exports), so it never waits on the collector."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from opentelemetry.context import Context

from runtime.telemetry import names

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.util.types import Attributes


class Instruments:
    """``spin.request_count`` (one per request an app's route matched, component or static
    response, as Spin's trigger counts them) and ``spin.component_cpu_time`` (the CPU seconds of
    each guest run, which Spin records behind its `cpu-time-metrics` feature)."""

    def __init__(self, meter: Meter) -> None:
        self._requests = meter.create_counter(names.REQUEST_COUNT, description="Requests an app's route matched")
        self._cpu = meter.create_histogram(names.COMPONENT_CPU_TIME, unit="s",
                                           description="CPU time of a component's guest runs")
        # Attribute sets are reused per (app, app_id, component): no dict is built per request.
        self._labels: dict[tuple[str, str, str], Attributes] = {}
        self._lock = threading.Lock()
        # Handed to each measurement, which would otherwise look the current context up for an
        # exemplar: there is none to find (spans travel in RequestContext, not in contextvars).
        self._context = Context()

    def _attributes(self, app: str, app_id: str, component_id: str) -> Attributes:
        key = (app, app_id, component_id)
        attributes = self._labels.get(key)
        if attributes is None:
            with self._lock:
                if len(self._labels) > 10_000:
                    self._labels.clear()  # bounded: apps and components come and go with swaps
                attributes = self._labels[key] = {
                    names.TRIGGER_TYPE: "http", names.APP_ID: app_id, names.COMPONENT_ID: component_id,
                    names.APP: app,
                }
        return attributes

    def request(self, app: str, app_id: str, component_id: str) -> None:
        self._requests.add(1, self._attributes(app, app_id, component_id), self._context)

    def cpu_time(self, app: str, app_id: str, component_id: str, seconds: float) -> None:
        self._cpu.record(seconds, self._attributes(app, app_id, component_id), self._context)
