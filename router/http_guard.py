"""What every HTTP response on our listeners goes through (ASGI middleware in front of the apps).

* Date (RFC 9110 6.6.1): hypercorn's own is turned off (it added a second one to a guest's), so
  a response without one gets it here.
"""

from __future__ import annotations

from router.asgi import ASGIApp, Message, Receive, Scope, Send
from router.http_date import has_date, http_date


class HttpGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start" and not has_date(message.get("headers", [])):
                message = {**message, "headers": [*message.get("headers", []), (b"date", http_date())]}
            await send(message)

        await self.app(scope, receive, send_dated)
