"""Counters, histogram and the Prometheus/HTML renderings (pure)."""

from __future__ import annotations

from router.admin import status_html
from router.metrics import AppStats, prometheus


def test_stats_and_quantiles() -> None:
    stats = AppStats()
    assert stats.quantile(0.99) is None and stats.mean is None
    for _ in range(98):
        stats.record(200, 0.002)
    stats.record(404, 0.02)
    stats.record(503, 3.0)
    assert stats.requests == 100
    assert stats.by_class == {"1xx": 0, "2xx": 98, "3xx": 0, "4xx": 1, "5xx": 1}
    assert stats.quantile(0.5) == 0.0025
    assert stats.quantile(0.99) == 0.025
    assert stats.quantile(1.0) == 5.0
    assert abs(stats.mean - (98 * 0.002 + 0.02 + 3.0) / 100) < 1e-9  # type: ignore[operator]


def test_prometheus_text() -> None:
    stats = AppStats()
    stats.record(200, 0.003)
    stats.record(500, 60.0)
    text = prometheus({'we"ird': stats}, {'we"ird': "ready"}, unmatched=7)
    lines = text.splitlines()
    assert 'lepton_requests_total{app="we\\"ird",code="2xx"} 1' in lines
    assert 'lepton_requests_total{app="we\\"ird",code="5xx"} 1' in lines
    assert 'lepton_request_duration_seconds_bucket{app="we\\"ird",le="0.005"} 1' in lines
    assert 'lepton_request_duration_seconds_bucket{app="we\\"ird",le="30.0"} 1' in lines
    assert 'lepton_request_duration_seconds_bucket{app="we\\"ird",le="+Inf"} 2' in lines
    assert 'lepton_request_duration_seconds_count{app="we\\"ird"} 2' in lines
    assert 'lepton_app_state{app="we\\"ird",state="ready"} 1' in lines
    assert "lepton_unmatched_requests_total 7" in lines
    assert text.endswith("\n")


def test_status_html_escapes_everything() -> None:
    data = {
        "pid": 1, "routes_file": "/x/<routes>.toml", "ready": False, "reloads": 2, "unmatched_requests": 0,
        "config_error": "bad <b>", "apps": [{
            "name": "<script>", "state": "failed", "error": "<img src=x>", "source": "r/<a>",
            "routes": [{"hosts": ["a.test"], "prefix": "/p"}], "inflight": 0, "requests": 0,
            "responses": {"2xx": 0}, "rejected": 0, "latency_ms": {"mean": None, "p50_le": None, "p99_le": None},
            "version": None,
        }],
    }
    page = status_html(data)
    for raw in ("<script>", "<img", "<a>", "<b>", "<routes>"):
        assert raw not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x&gt;" in page and "a.test /p" in page
