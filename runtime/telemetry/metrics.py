"""The runtime's metrics, named as Spin names them (runtime/telemetry/names.py), on a Meter the
router hands over when metrics are on. Recording is in memory (the export is a reader thread's
work), so it never waits on the collector, and it is kept cheap: the request count is a plain
counter per (app, component) that the SDK reads through an observable counter when it collects."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation

from runtime.telemetry import names

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.util.types import Attributes

MAX_SERIES = 10_000  # (app, app id, component) sets kept; apps and components come and go with swaps


class Instruments:
    """``spin.request_count`` (one per request an app's route took, component or static response,
    as Spin's trigger counts them) and ``spin.component_cpu_time`` (the CPU seconds of each guest
    run, which Spin records with its default `cpu-time-metrics` feature)."""

    def __init__(self, meter: Meter) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        meter.create_observable_counter(names.REQUEST_COUNT, callbacks=[self._observe_requests],
                                        description="Requests an app's route took")
        self._cpu = meter.create_histogram(names.COMPONENT_CPU_TIME, unit="s",
                                           description="CPU time of a component's guest runs")
        # Attribute sets are reused per (app, app_id, component): no dict is built per request.
        self._labels: dict[tuple[str, str, str], Attributes] = {}
        self._lock = threading.Lock()
        # Handed to each measurement, which would otherwise look the current context up for an
        # exemplar: there is none to find (spans travel in RequestContext, not in contextvars).
        self._context = Context()

    def _attributes(self, key: tuple[str, str, str]) -> Attributes:
        attributes = self._labels.get(key)
        if attributes is None:
            app, app_id, component_id = key
            attributes = {names.TRIGGER_TYPE: "http", names.APP_ID: app_id, names.COMPONENT_ID: component_id,
                          names.APP: app}
            with self._lock:
                if len(self._labels) >= MAX_SERIES:
                    self._labels.clear()
                self._labels[key] = attributes
        return attributes

    def request(self, app: str, app_id: str, component_id: str) -> None:
        key = (app, app_id, component_id)
        with self._lock:
            if key not in self._counts and len(self._counts) >= MAX_SERIES:
                self._counts.clear()  # (a bound, not an expected case: cumulative series restart)
            self._counts[key] = self._counts.get(key, 0) + 1

    def _observe_requests(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._counts.items())
        return [Observation(count, self._attributes(key)) for key, count in counts]

    def cpu_time(self, app: str, app_id: str, component_id: str, seconds: float) -> None:
        self._cpu.record(seconds, self._attributes((app, app_id, component_id)), self._context)
