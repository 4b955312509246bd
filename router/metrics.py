"""Per-app request counters and latency histograms (cheap: a few additions per request)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# Prometheus-style cumulative buckets, in seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class AppStats:
    inflight: int = 0
    requests: int = 0
    by_class: dict[str, int] = field(default_factory=lambda: {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0})
    rejected: int = 0  # 503 because max_concurrent was reached
    latency_sum: float = 0.0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def record(self, status: int, seconds: float) -> None:
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
