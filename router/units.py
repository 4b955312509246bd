"""Human-friendly quantities in routes.toml: durations ("30s", "1m30s", "250ms") and sizes ("256MiB")."""

from __future__ import annotations

import os
import re

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    # Bare K/M/G are read as binary: that is what people mean for memory.
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_workers(value: object) -> int:
    """Worker processes from an integer >= 1 or "auto" (one per CPU this process may run on, as
    nginx's `worker_processes auto`). Raises ValueError."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError('must be an integer >= 1 or "auto"')
    return value


def parse_duration(value: object) -> float:
    """Seconds from "30s", "1m30s", "250ms", "2h" or a bare number of seconds. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as \"30s\", got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"invalid duration {value!r} (use e.g. \"30s\", \"250ms\", \"1m30s\")")
    else:
        raise ValueError(f"expected a duration such as \"30s\", got {type(value).__name__}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from "256MiB", "10MB", "512k" or a bare integer of bytes. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as \"10MiB\", got a boolean")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if not match or match.group(2) not in _SIZE_UNITS:
            raise ValueError(f"invalid size {value!r} (use e.g. \"10MiB\", \"256MiB\", \"1GB\")")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise ValueError(f"expected a size such as \"10MiB\", got {type(value).__name__}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return size


def format_duration(seconds: float) -> str:
    if seconds < 1 and (seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    if seconds.is_integer():
        return f"{int(seconds)}s"
    return f"{seconds}s"


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
