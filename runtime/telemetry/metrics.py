"""The runtime's metrics, named as Spin names them (runtime/telemetry/names.py): recorded as tuples
for the telemetry process, whose SDK instruments aggregate and export them
(router/telemetry_export.py): ``spin.request_count`` (a counter) and ``spin.component_cpu_time``
(a histogram, seconds)."""

from __future__ import annotations

from runtime.telemetry.record import COUNT, CPU, Sink


class Instruments:
    """``spin.request_count``: one per request an app's route took (component or static response,
    as Spin's trigger counts them); ``spin.component_cpu_time``: the CPU seconds of each guest run
    (Spin records it with its default `cpu-time-metrics` feature)."""

    __slots__ = ("_sink",)

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def request(self, app: str, app_id: str, component_id: str) -> None:
        self._sink.put((COUNT, app, app_id, component_id))

    def cpu_time(self, app: str, app_id: str, component_id: str, seconds: float) -> None:
        self._sink.put((CPU, app, app_id, component_id, seconds))
