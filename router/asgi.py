"""ASGI types, and ending a response whose request body is left unread.

hypercorn hands the app the request body through a bounded queue (Config.max_app_queue_size
messages) and, when the response ends, puts `http.disconnect` on that queue before it closes the
connection. If the app stopped reading a body that kept coming (one refused as too large, say),
the queue is full: that put waits forever inside our last `send`, the connection stays open and
the client waits for its own timeout. `end_unread` sends the last message while a task reads and
drops whatever the queue holds, so the response ends and the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def end_unread(receive: Receive, send: Send, last: Message) -> None:
    """Send `last` (the final response message) without reading the rest of the request body."""

    async def discard() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    reader = asyncio.create_task(discard())
    try:
        await send(last)
    finally:
        # hypercorn has queued http.disconnect by the time `send` returns; nothing is left to read.
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
