"""HTTP/1.1 status lines with a reason phrase, as Spin's server (hyper) writes them.

hypercorn builds its h11 responses without a reason phrase, so h11 writes "HTTP/1.1 200 \\r\\n".
ASGI cannot carry one, so this is a hook at the one place every HTTP/1 response head passes:
H11Protocol._send_h11_event, in a subclass that hypercorn's ProtocolWrapper is pointed at by
`install()`. The same hook gives a Date to the responses hypercorn writes itself (the 400 for a
request h11 cannot parse, a 500 for an app that failed before answering): serve.py turns
hypercorn's own Date off, because hypercorn appended it after the app's and a guest that set
Date sent two; responses from the apps get theirs in router/http_guard.py.
"""

from __future__ import annotations

from http import HTTPStatus

import h11
import hypercorn.protocol
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


class LeptonH11Protocol(H11Protocol):
    async def _send_h11_event(self, event: H11SendableEvent) -> None:
        if isinstance(event, h11.Response | h11.InformationalResponse):
            event = complete_head(event)
        await super()._send_h11_event(event)


def install() -> None:
    """Have hypercorn use LeptonH11Protocol for the HTTP/1 connections of this process."""
    # Fail at startup, not silently, if a hypercorn upgrade moved either hook point.
    if "H11Protocol" not in hypercorn.protocol.ProtocolWrapper.__init__.__code__.co_names or not hasattr(
        H11Protocol, "_send_h11_event"
    ):
        raise RuntimeError("this hypercorn version has no H11Protocol hook point; see router/http1_head.py")
    setattr(hypercorn.protocol, "H11Protocol", LeptonH11Protocol)  # noqa: B010 (a module global hypercorn reads)
