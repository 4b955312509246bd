"""The Date header value (RFC 9110 5.6.7 IMF-fixdate), formatted at most once per second."""

from __future__ import annotations

import time
from email.utils import formatdate

_cached: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    global _cached
    now = int(time.time())
    if _cached[0] != now:
        _cached = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _cached[1]


def has_date(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(bytes(name).lower() == b"date" for name, _ in headers)
