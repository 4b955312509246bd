"""wasi:cli/{stdin,stdout,stderr}@0.2.x: no stdin; guest output goes to the log, line by line,
prefixed with the app and component (logger "lepton.guest"), and, when OpenTelemetry logs are on,
to the collector as log records (runtime/telemetry/logs.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import runtime.telemetry as telemetry
from runtime.capabilities.wasi.io import BytesInputStream, OutputStream, new_input_stream, new_output_stream
from runtime.core import context
from runtime.core.context import StateKey
from runtime.core.contract import BaseCapability, InterfaceImpl

guest_log = logging.getLogger("lepton.guest")
MAX_LINE = 16 * 1024  # a guest writing without newlines is still logged in bounded pieces
# Per-request slots. An executor may preset them: stdin's bytes (default: empty), or a stream
# that replaces the stdout log (WAGI: stdout is the response).
STDIN: StateKey[bytes] = StateKey("wasi-cli.stdin")
STDOUT: StateKey[OutputStream] = StateKey("wasi-cli.stdout")
STDERR: StateKey[OutputStream] = StateKey("wasi-cli.stderr")


class LogOutputStream(OutputStream):
    def __init__(self, prefix: str, level: int, also: Callable[[str], None] | None = None) -> None:
        self._prefix = prefix
        self._level = level
        self._pending = b""
        self._also = also  # each line to OpenTelemetry too, when its logs are on

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        buf = self._pending + data
        *lines, self._pending = buf.split(b"\n")
        for line in lines:
            self._emit(line)
        while len(self._pending) > MAX_LINE:
            self._emit(self._pending[:MAX_LINE])
            self._pending = self._pending[MAX_LINE:]

    def _emit(self, line: bytes) -> None:
        logged = guest_log.isEnabledFor(self._level)
        if not logged and self._also is None:
            return
        text = line.decode("utf-8", "replace").rstrip("\r")
        if logged:
            guest_log.log(self._level, "%s %s", self._prefix, text)
        if self._also is not None:
            self._also(text)

    def close(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = b""


def _prefix() -> str:
    ctx = context.current()
    return f"[{ctx.app.name}/{ctx.component.id}]"


def _also(ctx: context.RequestContext, stream: str) -> Callable[[str], None] | None:
    if telemetry.guest_logs is None:
        return None
    from runtime.telemetry.logs import guest_output  # (loads OpenTelemetry: only when logs are on)

    return guest_output(ctx, stream)


def _stream(level: int, key: StateKey[OutputStream], name: str) -> Any:
    def get(store: Any) -> Any:
        ctx = context.current()
        # One stream per request and kind, so partial lines join up across get-stdout calls.
        stream = ctx.get(key)
        if stream is None:
            log_stream = LogOutputStream(_prefix(), level, _also(ctx, name))
            ctx.set(key, log_stream)
            ctx.cleanups.append(log_stream.close)
            stream = log_stream
        return new_output_stream(_Shared(stream))

    return get


class _Shared(OutputStream):
    """A handle on the request's log stream; dropping it must not flush the shared buffer."""

    def __init__(self, inner: OutputStream) -> None:
        self._inner = inner

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        self._inner.write(data, blocking, deadline)


def _stdin(store: Any) -> Any:
    # An executor may provide the request's stdin (WAGI: the request body) as bytes.
    data = context.current().get(STDIN) or b""
    return new_input_stream(BytesInputStream(bytes(data)))


class CliCapability(BaseCapability):
    name = "wasi-cli-stdio"
    inline_safe = True  # in-memory work only: may run on the event loop (see runtime.http.scheduling)
    interfaces = frozenset({"wasi:cli/stdin", "wasi:cli/stdout", "wasi:cli/stderr"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "wasi:cli/stdin":
            return InterfaceImpl(funcs={"get-stdin": _stdin})
        if interface == "wasi:cli/stdout":
            return InterfaceImpl(funcs={"get-stdout": _stream(logging.INFO, STDOUT, "stdout")})
        return InterfaceImpl(funcs={"get-stderr": _stream(logging.WARNING, STDERR, "stderr")})
