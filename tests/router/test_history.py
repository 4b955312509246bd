"""The per-second traffic history behind the status page's charts (pure)."""

from __future__ import annotations

from router.history import BOUNDS, HISTORY_S, History, Window, now_second
from router.metrics import AppStats


def test_seconds_sum_into_windows() -> None:
    h = History()
    for _ in range(9):
        h.record(1000, 200, 0.002)
    h.record(1000, 503, 0.3)
    h.record(1001, 500, 0.02)
    w = h.window(1000, 2)
    assert (w.seconds, w.requests, w.errors) == (2, 11, 2)
    assert w.rate == 5.5 and w.error_ratio == 2 / 11
    assert sum(w.latency) == 11
    assert w.latency[BOUNDS.index(0.0025)] == 9
    assert h.window(1002, 5).requests == 0 and h.window(1002, 5).error_ratio is None


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    latency = [0] * (len(BOUNDS) + 1)
    latency[BOUNDS.index(0.01)] = 100  # all between 5 ms and 10 ms
    w = Window(1, 100, 0, tuple(latency))
    assert abs(w.quantile(0.99) - (0.005 + 0.005 * 0.99)) < 1e-12  # type: ignore[operator]
    assert abs(w.quantile(0.5) - 0.0075) < 1e-12  # type: ignore[operator]
    first = [0] * (len(BOUNDS) + 1)
    first[0] = 4
    assert Window(1, 4, 0, tuple(first)).quantile(0.5) == 0.0005  # the first bucket starts at 0
    slow = [0] * (len(BOUNDS) + 1)
    slow[-1] = 3
    assert Window(1, 3, 0, tuple(slow)).quantile(0.99) == BOUNDS[-1]  # past the last bound
    assert Window(1, 0, 0, (0,) * (len(BOUNDS) + 1)).quantile(0.99) is None


def test_untimed_errors_count_but_do_not_pull_latency_down() -> None:
    h = History()
    h.record(50, 200, 0.04)
    h.record_untimed_error(50)
    w = h.window(50, 1)
    assert (w.requests, w.errors, sum(w.latency)) == (2, 1, 1)
    assert w.quantile(0.99) is not None and w.quantile(0.99) > 0.025  # type: ignore[operator]


def test_a_row_from_an_earlier_lap_reads_as_empty() -> None:
    h = History()
    h.record(7, 200, 0.001)
    assert h.window(7 + HISTORY_S, 1).requests == 0  # same row, another second
    h.record(7 + HISTORY_S, 500, 0.001)
    assert h.window(7, 1).requests == 0
    assert (h.window(7 + HISTORY_S, 1).requests, h.window(7 + HISTORY_S, 1).errors) == (1, 1)


def test_series_aligns_windows_and_keeps_past_sums() -> None:
    h = History()
    for second in range(100, 120):
        for _ in range(second - 99):
            h.record(second, 200, 0.001)
    series = h.series(now=123, span=20, step=5)  # windows end at 120: 100-104 ... 115-119
    assert [w.requests for w in series] == [15, 40, 65, 90]
    assert all(w.seconds == 5 for w in series)
    h.record(104, 200, 0.001)  # cannot happen (the past does not change): shows the sum is kept
    assert [w.requests for w in h.series(now=124, span=20, step=5)] == [15, 40, 65, 90]
    assert [w.requests for w in h.series(now=125, span=20, step=5)] == [40, 65, 90, 0]
    assert len(h.series(now=125, span=600, step=1)) == 600


def test_an_idle_app_has_no_ring() -> None:
    h = History()
    assert h._ring is None
    assert [w.requests for w in h.series(now=10_000, span=60, step=10)] == [0] * 6
    assert h._ring is None


def test_kept_sums_are_pruned() -> None:
    h = History()
    h.record(5, 200, 0.001)
    for now in range(10, 10 + 5 * HISTORY_S, 7):
        h.series(now=now, span=HISTORY_S, step=1)
    assert len(h._sums) <= 4 * HISTORY_S + HISTORY_S


def test_app_stats_feed_the_history() -> None:
    stats = AppStats()
    stats.record(200, 0.003)
    stats.record(502, 0.2)
    stats.rejected += 1  # as the dispatcher counts a max_concurrent refusal
    stats.rejected += 2
    assert stats.rejected == 3 and stats.requests == 2
    now = now_second()
    total = stats.history.window(now - 5, 10)
    assert (total.requests, total.errors, sum(total.latency)) == (5, 4, 2)
