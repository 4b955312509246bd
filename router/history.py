"""The last ten minutes of one app's traffic, per second: requests, 5xx and a latency histogram.

The status page draws request rate, error rate and p99 from it. A ring of HISTORY_S one-second
rows, each tagged with the second it holds, so a row left over from an earlier lap of the ring
reads as empty and nothing has to run while an app is idle. The ring is one flat uint32 array made
on the app's first request (43 KB): idle apps cost nothing, and 1,000 busy ones ~43 MB.

Seconds are whole seconds of time.monotonic(): it never steps back, so once the clock has passed
a second nothing writes to its row again (everything runs on the event loop thread), and a sum
over past seconds can be kept instead of recomputed at every poll of the page.
"""

from __future__ import annotations

import bisect
import time
from array import array
from dataclasses import dataclass

HISTORY_S = 600
# The same bounds as the Prometheus histogram (router/metrics.py), so the page's p99 and a
# histogram_quantile() over /metrics agree.
BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAMP, _REQUESTS, _ERRORS, _LATENCY = 0, 1, 2, 3
_WIDTH = _LATENCY + len(BOUNDS) + 1  # the last latency bucket is +Inf
_EMPTY_ROW = array("I", bytes(4 * _WIDTH))


@dataclass(frozen=True)
class Window:
    """Traffic summed over some seconds."""

    seconds: int
    requests: int
    errors: int
    latency: tuple[int, ...]  # counts per BOUNDS bucket (+Inf last)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        """Estimated like Prometheus' histogram_quantile: linear within the bucket holding rank
        q; past the last bound, the last bound. None without timed requests."""
        total = sum(self.latency)
        if not total:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(self.latency):
            if count and seen + count >= rank:
                if index == len(BOUNDS):
                    return BOUNDS[-1]
                lower = BOUNDS[index - 1] if index else 0.0
                return lower + (BOUNDS[index] - lower) * (rank - seen) / count
            seen += count
        return BOUNDS[-1]


_KEEP_SUMS = 4 * HISTORY_S  # past this many kept sums, those older than the ring are dropped


def now_second() -> int:
    return int(time.monotonic())


class History:
    __slots__ = ("_ring", "_sums")

    def __init__(self) -> None:
        self._ring: array[int] | None = None
        self._sums: dict[tuple[int, int], Window] = {}  # (start, seconds) of a past window -> its sum

    def _row(self, second: int) -> int:
        ring = self._ring
        if ring is None:
            ring = self._ring = array("I", bytes(4 * _WIDTH * HISTORY_S))
        base = (second % HISTORY_S) * _WIDTH
        if ring[base + _STAMP] != second:  # a row from an earlier lap: start it afresh
            ring[base : base + _WIDTH] = _EMPTY_ROW
            ring[base + _STAMP] = second
        return base

    def record(self, second: int, status: int, seconds: float) -> None:
        # On every request: _row() inlined for its common case (the ring exists, the row is current).
        ring = self._ring
        base = (second % HISTORY_S) * _WIDTH
        if ring is None or ring[base + _STAMP] != second:
            base = self._row(second)
            ring = self._ring
            assert ring is not None
        ring[base + _REQUESTS] += 1
        if status >= 500:
            ring[base + _ERRORS] += 1
        ring[base + _LATENCY + bisect.bisect_left(BOUNDS, seconds)] += 1

    def record_untimed_error(self, second: int) -> None:
        """A request refused before it ran (503 at max_concurrent): an error the client saw,
        whose near-zero time must not pull the latency quantiles down."""
        base = self._row(second)
        ring = self._ring
        assert ring is not None
        ring[base + _REQUESTS] += 1
        ring[base + _ERRORS] += 1

    def window(self, start: int, seconds: int) -> Window:
        """The seconds start .. start+seconds-1 (those older than HISTORY_S read as empty)."""
        requests = errors = 0
        latency = [0] * (len(BOUNDS) + 1)
        ring = self._ring
        if ring is not None:
            for second in range(start, start + seconds):
                base = (second % HISTORY_S) * _WIDTH
                if ring[base + _STAMP] != second:
                    continue
                requests += ring[base + _REQUESTS]
                errors += ring[base + _ERRORS]
                for index in range(len(latency)):
                    latency[index] += ring[base + _LATENCY + index]
        return Window(seconds, requests, errors, tuple(latency))

    def series(self, now: int, span: int, step: int) -> list[Window]:
        """span // step windows of `step` seconds, oldest first: the last is the latest one that
        has ended by second `now` (the current, unfinished second) and starts at a multiple of
        `step`, so successive polls ask for the same windows and find their sums kept."""
        count = span // step
        end = now - now % step
        first = end - count * step
        if self._ring is None:
            return [Window(step, 0, 0, (0,) * (len(BOUNDS) + 1))] * count
        out = []
        for start in range(first, end, step):
            key = (start, step)
            window = self._sums.get(key)
            if window is None:
                window = self._sums[key] = self.window(start, step)
            out.append(window)
        if len(self._sums) > _KEEP_SUMS:
            self._sums = {k: w for k, w in self._sums.items() if k[0] >= now - HISTORY_S}
        return out
