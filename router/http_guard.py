"""What every HTTP request on our listeners goes through before an app sees it (ASGI middleware).

h11 parses the bytes; these are the rules of RFC 9110/9112 it leaves to the server:

* Content-Length together with Transfer-Encoding (RFC 9112 6.1): h11 frames the body by
  Transfer-Encoding, which is allowed, but the connection must then be closed, because a proxy in
  front may have framed it by Content-Length and read the rest as another request. We refuse the
  request (400) and close: nothing behind it on the connection is served.
* An absolute-form request target, `GET http://host/path` (RFC 9112 3.2.2): the server must use
  the target's authority, not the Host header. The request is rewritten to origin form with that
  authority as its Host before anything routes on it; an http(s) URI without a host or with
  userinfo is invalid (RFC 9110 4.2.1, 4.2.4): 400.
* Date (RFC 9110 6.6.1): hypercorn's own is turned off (it added a second one to a guest's), so
  a response without one gets it here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from router.asgi import ASGIApp, Message, Receive, Scope, Send, end_unread
from router.http_date import has_date, http_date

BAD_REQUEST = b"bad request\n"


class HttpGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("http_version", "1.1") in ("1.0", "1.1"):
            names = {name for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                await _refuse(receive, send)
                return
            if _is_absolute_form(scope["raw_path"]):
                rewritten = _origin_form(scope)
                if rewritten is None:
                    await _refuse(receive, send)
                    return
                scope = rewritten

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start" and not has_date(message.get("headers", [])):
                message = {**message, "headers": [*message.get("headers", []), (b"date", http_date())]}
            await send(message)

        await self.app(scope, receive, send_dated)


async def _refuse(receive: Receive, send: Send) -> None:
    """400 and close, without reading the body: its framing is what is in doubt."""
    await send({
        "type": "http.response.start",
        "status": 400,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(BAD_REQUEST)).encode()),
            (b"connection", b"close"),
            (b"date", http_date()),
        ],
    })
    await end_unread(receive, send, {"type": "http.response.body", "body": BAD_REQUEST, "more_body": False})


def _is_absolute_form(raw_path: bytes) -> bool:
    return raw_path[:8].lower().startswith((b"http://", b"https://"))


def _origin_form(scope: Scope) -> Scope | None:
    """`scope` with path and Host taken from its absolute-form target; None if that is invalid."""
    # hypercorn already split the query off raw_path; what is left is scheme://authority/path.
    target = urlsplit(scope["raw_path"].decode("latin-1"))
    try:
        userinfo = target.username is not None or target.password is not None
        target.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return None
    if userinfo or not target.hostname or target.fragment:
        return None
    path = target.path or "/"
    authority = target.netloc.encode("latin-1")
    headers: list[tuple[bytes, bytes]] = []
    for name, value in scope["headers"]:
        if name == b"host":
            if authority:
                headers.append((b"host", authority))  # in the place of the first Host, if any
                authority = b""
        else:
            headers.append((name, value))
    if authority:
        headers.insert(0, (b"host", authority))
    rewritten: dict[str, Any] = {**scope, "path": unquote(path), "raw_path": path.encode("latin-1"),
                                 "headers": headers}
    return rewritten
