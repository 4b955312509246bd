"""Reading routes.toml from the event loop: the file through aiofiles (whose reads run on its own
threads, so a slow disk or network mount never stalls the loop), the validation on a worker
thread (it is CPU work: thousands of apps take tens of milliseconds)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiofiles

from router.config import RoutesConfig, parse, unreadable


async def read_routes(path: Path) -> RoutesConfig:
    """routes.toml, validated. Raises ConfigError naming file, line, app and field."""
    try:
        async with aiofiles.open(path, encoding="utf-8") as f:
            text = await f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise unreadable(path, exc) from exc
    return await asyncio.to_thread(parse, text, path)
