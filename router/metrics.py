"""Per-app request counters and latency histograms (cheap: a few additions per request), and the
per-second history the status page draws (router/history.py)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from router.history import BOUNDS, History, now_second

# Prometheus-style cumulative buckets, in seconds.
BUCKETS = BOUNDS


@dataclass
class AppStats:
    inflight: int = 0
    requests: int = 0
    by_class: dict[str, int] = field(default_factory=lambda: {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0})
    latency_sum: float = 0.0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    history: History = field(default_factory=History, repr=False, compare=False)
    _rejected: int = field(default=0, repr=False)

    @property
    def rejected(self) -> int:
        """503s because max_concurrent was reached."""
        return self._rejected

    @rejected.setter
    def rejected(self, value: int) -> None:
        # The dispatcher counts a refusal with `stats.rejected += 1`; the history must see it too,
        # as an error (the client got a 503), so the counter is a property rather than a field.
        for _ in range(value - self._rejected):
            self.history.record_untimed_error(now_second())
        self._rejected = value

    def record(self, status: int, seconds: float) -> None:
        self.history.record(now_second(), status, seconds)
        self.requests += 1
        key = f"{status // 100}xx"
        if key in self.by_class:
            self.by_class[key] += 1
        self.latency_sum += seconds
        self.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile q (good enough for a status page)."""
        if not self.requests:
            return None
        rank = q * self.requests
        seen = 0
        for index, count in enumerate(self.bucket_counts):
            seen += count
            if seen >= rank:
                return BUCKETS[index] if index < len(BUCKETS) else float("inf")
        return float("inf")

    @property
    def mean(self) -> float | None:
        return self.latency_sum / self.requests if self.requests else None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(stats: dict[str, AppStats], states: dict[str, str], unmatched: int) -> str:
    """Text exposition format 0.0.4."""
    lines = [
        "# HELP lepton_requests_total Requests answered by each app, by status class.",
        "# TYPE lepton_requests_total counter",
    ]
    for app, s in stats.items():
        for cls, count in s.by_class.items():
            lines.append(f'lepton_requests_total{{app="{_escape(app)}",code="{cls}"}} {count}')
    lines += [
        "# HELP lepton_requests_rejected_total Requests refused with 503 by max_concurrent.",
        "# TYPE lepton_requests_rejected_total counter",
    ]
    lines += [f'lepton_requests_rejected_total{{app="{_escape(a)}"}} {s.rejected}' for a, s in stats.items()]
    lines += [
        "# HELP lepton_requests_in_flight Requests being handled now.",
        "# TYPE lepton_requests_in_flight gauge",
    ]
    lines += [f'lepton_requests_in_flight{{app="{_escape(a)}"}} {s.inflight}' for a, s in stats.items()]
    lines += [
        "# HELP lepton_request_duration_seconds Time to the end of the response body.",
        "# TYPE lepton_request_duration_seconds histogram",
    ]
    for app, s in stats.items():
        label = f'app="{_escape(app)}"'
        cumulative = 0
        for bound, count in zip((*BUCKETS, float("inf")), s.bucket_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'lepton_request_duration_seconds_bucket{{{label},le="{le}"}} {cumulative}')
        lines.append(f"lepton_request_duration_seconds_sum{{{label}}} {s.latency_sum}")
        lines.append(f"lepton_request_duration_seconds_count{{{label}}} {s.requests}")
    lines += ["# HELP lepton_app_state 1 for the state each app is in.", "# TYPE lepton_app_state gauge"]
    for app, state in states.items():
        lines.append(f'lepton_app_state{{app="{_escape(app)}",state="{state}"}} 1')
    lines += [
        "# HELP lepton_unmatched_requests_total Requests no app matched (404).",
        "# TYPE lepton_unmatched_requests_total counter",
        f"lepton_unmatched_requests_total {unmatched}",
    ]
    return "\n".join(lines) + "\n"
