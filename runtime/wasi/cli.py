"""wasi:cli/{stdin,stdout,stderr}@0.2.x: no stdin; guest output goes to the log, line by line,
prefixed with the app and component (logger "lepton.guest")."""

from __future__ import annotations

import logging
from typing import Any

from runtime import context
from runtime.capabilities import BaseCapability, InterfaceImpl
from runtime.wasi.io import BytesInputStream, OutputStream, new_input_stream, new_output_stream

guest_log = logging.getLogger("lepton.guest")
MAX_LINE = 16 * 1024  # a guest writing without newlines is still logged in bounded pieces
STDIN_KEY = "cli.stdin"  # RequestContext.state: bytes served as stdin (default: empty)
STDOUT_KEY = "cli.stdout"  # RequestContext.state: a preset OutputStream replaces the stdout log


class LogOutputStream(OutputStream):
    def __init__(self, prefix: str, level: int) -> None:
        self._prefix = prefix
        self._level = level
        self._pending = b""

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        buf = self._pending + data
        *lines, self._pending = buf.split(b"\n")
        for line in lines:
            self._emit(line)
        while len(self._pending) > MAX_LINE:
            self._emit(self._pending[:MAX_LINE])
            self._pending = self._pending[MAX_LINE:]

    def _emit(self, line: bytes) -> None:
        if guest_log.isEnabledFor(self._level):
            guest_log.log(self._level, "%s %s", self._prefix, line.decode("utf-8", "replace").rstrip("\r"))

    def close(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = b""


def _prefix() -> str:
    ctx = context.current()
    return f"[{ctx.app.name}/{ctx.component.id}]"


def _stream(level: int, name: str) -> Any:
    def get(store: Any) -> Any:
        ctx = context.current()
        # One stream per request and kind, so partial lines join up across get-stdout calls.
        key = f"cli.{name}"
        stream = ctx.state.get(key)
        if stream is None:
            stream = ctx.state[key] = LogOutputStream(_prefix(), level)
            ctx.cleanups.append(stream.close)
        return new_output_stream(_Shared(stream))

    return get


class _Shared(OutputStream):
    """A handle on the request's log stream; dropping it must not flush the shared buffer."""

    def __init__(self, inner: LogOutputStream) -> None:
        self._inner = inner

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        self._inner.write(data, blocking, deadline)


def _stdin(store: Any) -> Any:
    # An executor may provide the request's stdin (WAGI: the request body) as bytes.
    data = context.current().state.get(STDIN_KEY, b"")
    return new_input_stream(BytesInputStream(bytes(data)))


class CliCapability(BaseCapability):
    name = "wasi-cli-stdio"
    interfaces = frozenset({"wasi:cli/stdin", "wasi:cli/stdout", "wasi:cli/stderr"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "wasi:cli/stdin":
            return InterfaceImpl(funcs={"get-stdin": _stdin})
        if interface == "wasi:cli/stdout":
            return InterfaceImpl(funcs={"get-stdout": _stream(logging.INFO, "stdout")})
        return InterfaceImpl(funcs={"get-stderr": _stream(logging.WARNING, "stderr")})
