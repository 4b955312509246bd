"""What the host bindings call, with no OpenTelemetry import: each hook is a no-op (or hands its
input back) while traces are off, and loads runtime/telemetry/spans.py only once they are on.

* :func:`traced` wraps a capability's host functions in their spans at link time, and returns
  them unwrapped when traces are off then: those calls pay nothing at all.
* :func:`outbound_start`, :func:`inject`, :func:`inject_text`, :func:`outbound_end`: the client
  span of an outbound HTTP request and its ``traceparent`` header.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import runtime.telemetry as telemetry

if TYPE_CHECKING:
    from runtime.core.context import RequestContext
    from runtime.telemetry.record import Span

HostFunc = Callable[..., Any]


@dataclass(frozen=True)
class HostSpan:
    """The span one host function opens: its name, fixed attributes, and attributes taken from its
    arguments (after the store), as Spin's #[instrument] records the arguments it does not skip."""

    name: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    from_args: Callable[[tuple[Any, ...]], Mapping[str, Any]] | None = None


def traced(funcs: Mapping[str, HostFunc], spans: Mapping[str, HostSpan]) -> Mapping[str, HostFunc]:
    """`funcs`, with those named in `spans` wrapped in their span. With traces off when the app
    links (the router turns them on at worker start, before any app loads): `funcs` itself."""
    if telemetry.recorder is None or not spans:
        return funcs
    from runtime.telemetry.spans import wrap

    return {name: wrap(fn, spans[name]) if name in spans else fn for name, fn in funcs.items()}


def first_arg(name: str) -> Callable[[tuple[Any, ...]], Mapping[str, Any]]:
    """Record the function's first argument (after the store) under `name`."""
    return lambda args: {name: str(args[0])} if args else {}


def second_arg(name: str) -> Callable[[tuple[Any, ...]], Mapping[str, Any]]:
    """Record the function's second argument under `name` (a method's first after its handle)."""
    return lambda args: {name: str(args[1])} if len(args) > 1 else {}


def outbound_start(ctx: RequestContext, method: str, url: str) -> Span | None:
    """The client span of an outbound request of this run; None when the run is not traced."""
    if telemetry.recorder is None:
        return None
    from runtime.telemetry import spans

    return spans.outbound_start(ctx, method, url)


def inject(headers: list[tuple[str, bytes]], span: Span | None) -> list[tuple[str, bytes]]:
    """`headers` with the span's W3C ``traceparent`` (replacing the guest's); as is for None."""
    if span is None:
        return headers
    from runtime.telemetry import spans

    return spans.inject(headers, span)


def inject_text(headers: list[tuple[str, str]], span: Span | None) -> list[tuple[str, str]]:
    if span is None:
        return headers
    from runtime.telemetry import spans

    return spans.inject_text(headers, span)


def outbound_end(span: Span | None, status: int | None = None, error: str | None = None) -> None:
    """Close an outbound span with the response status, or the error case the guest got."""
    if span is None:
        return
    from runtime.telemetry import spans

    spans.outbound_end(span, status, error)
