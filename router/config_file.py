"""Reading routes.toml and the apps directory from the event loop: routes.toml through aiofiles
(whose reads run on its own threads, so a slow disk or network mount never stalls the loop), the
validation on a worker thread (it is CPU work: thousands of apps take tens of milliseconds). The
apps directory's files are small and many: they are listed, read and validated together on one
worker thread."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiofiles

from router.apps_dir import FileResult, is_app_file, parse_app_file, unreadable_file
from router.config import AppConfig, RoutesConfig, parse, unreadable


async def read_routes(path: Path) -> RoutesConfig:
    """routes.toml, validated. Raises ConfigError naming file, line, app and field."""
    try:
        async with aiofiles.open(path, encoding="utf-8") as f:
            text = await f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise unreadable(path, exc) from exc
    return await asyncio.to_thread(parse, text, path)


def scan_apps_dir(directory: Path, defaults: AppConfig) -> list[FileResult]:
    """Every app file of the apps directory, read and validated (blocking: run it on a thread).
    Raises OSError when the directory cannot be listed; a file that cannot be read is a problem
    of that file only (gone between listing and reading: removed, it is simply not there)."""
    results = []
    for name in sorted(os.listdir(directory)):
        if not is_app_file(name):
            continue
        path = directory / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            if path.is_dir():
                continue
            results.append(unreadable_file(path, exc))
            continue
        results.append(parse_app_file(path, text, defaults))
    return results


async def read_apps_dir(directory: Path, defaults: AppConfig) -> list[FileResult]:
    return await asyncio.to_thread(scan_apps_dir, directory, defaults)
