"""HTTP/1.1 status lines with a reason phrase, as Spin's server (hyper) writes them, and a whole
response written to the socket at once.

hypercorn builds its h11 responses without a reason phrase, so h11 writes "HTTP/1.1 200 \\r\\n".
ASGI cannot carry one, so this is a hook at the one place every HTTP/1 response head passes:
H11Protocol._send_h11_event, in a subclass that hypercorn's ProtocolWrapper is pointed at by
`install()`. The same hook gives a Date to the responses hypercorn writes itself (the 400 for a
request h11 cannot parse, a 500 for an app that failed before answering): serve.py turns
hypercorn's own Date off, because hypercorn appended it after the app's and a guest that set
Date sent two; responses from the apps get theirs in router/http_guard.py.

hypercorn writes a response's head and its body in separate socket writes. With uvloop each write
is a send(2) made holding the GIL, about a twentieth of the event loop's time per small response
(py-spy --gil, Python hello with instance reuse at 16 connections). Inside `head_with_body()`,
which the dispatcher enters when it has the whole body at hand, the head is held back and goes out
with the body in one write. Elsewhere (a streamed response, whose first chunk may be long in
coming) the head is written at once, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from http import HTTPStatus

import h11
import hypercorn.protocol
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import H11SendableEvent

from router.http_date import has_date, http_date

# hyper takes its phrases from the `http` crate, which words these four differently from Python's
# HTTPStatus (Python 3.11 keeps the RFC 2616 names).
_HYPER_WORDING = {413: "Payload Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
                  418: "I'm a teapot"}


def reason_phrase(status: int) -> bytes:
    """The canonical phrase for `status`, or b"" for a code without one (allowed: RFC 9112 4)."""
    if status in _HYPER_WORDING:
        return _HYPER_WORDING[status].encode("ascii")
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def complete_head(event: h11.Response | h11.InformationalResponse) -> h11.Response | h11.InformationalResponse:
    reason = event.reason or reason_phrase(event.status_code)
    if isinstance(event, h11.Response) and not has_date(list(event.headers)):
        return h11.Response(status_code=event.status_code, headers=[*event.headers, (b"date", http_date())],
                            reason=reason, http_version=event.http_version)
    # (h11 takes its own Headers object as is: no second validation on the common path.)
    return type(event)(status_code=event.status_code, headers=event.headers, reason=reason,
                       http_version=event.http_version)


class _HeldHead:
    """A response head waiting for its body (see head_with_body)."""

    __slots__ = ("data", "send")

    def __init__(self) -> None:
        self.data = b""
        self.send: Callable[[RawData], Awaitable[None]] | None = None


_held_head: ContextVar[_HeldHead | None] = ContextVar("lepton_held_head", default=None)


@asynccontextmanager
async def head_with_body() -> AsyncIterator[None]:
    """Within it, the HTTP/1 response head this task sends is held back and written together with
    the body that follows (send the whole response inside). Other protocols ignore it."""
    held = _HeldHead()
    token = _held_head.set(held)
    try:
        yield
    finally:
        _held_head.reset(token)
        if held.data and held.send is not None:  # (no body event came: the head still goes out)
            await held.send(RawData(data=held.data))


class LeptonH11Protocol(H11Protocol):
    async def _send_h11_event(self, event: H11SendableEvent) -> None:
        if isinstance(event, h11.Response | h11.InformationalResponse):
            event = complete_head(event)
        held = _held_head.get()
        if held is None or isinstance(event, h11.InformationalResponse):
            await super()._send_h11_event(event)
            return
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return  # (as hypercorn does: the connection is failing already)
        if isinstance(event, h11.Response):
            held.data, held.send = held.data + data, self.send
            return
        data, held.data = held.data + data, b""
        if data:  # (a content-length body's end of message is no bytes: nothing to write)
            await self.send(RawData(data=data))


def install() -> None:
    """Have hypercorn use LeptonH11Protocol for the HTTP/1 connections of this process."""
    # Fail at startup, not silently, if a hypercorn upgrade moved either hook point.
    if "H11Protocol" not in hypercorn.protocol.ProtocolWrapper.__init__.__code__.co_names or not hasattr(
        H11Protocol, "_send_h11_event"
    ):
        raise RuntimeError("this hypercorn version has no H11Protocol hook point; see router/http1_head.py")
    setattr(hypercorn.protocol, "H11Protocol", LeptonH11Protocol)  # noqa: B010 (a module global hypercorn reads)
