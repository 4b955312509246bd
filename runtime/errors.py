"""Errors raised by runtime/. Guest faults never escape RunningApp.handle: they become responses."""

from __future__ import annotations


class RuntimeErrorBase(Exception):
    """Base of runtime/ errors."""


class AppLoadError(RuntimeErrorBase):
    """An app cannot be loaded; the message names the app, the component and the field."""

    def __init__(self, app: str, message: str, *, component: str | None = None, field: str | None = None):
        where = f"app {app!r}"
        if component is not None:
            where += f", component {component!r}"
        if field is not None:
            where += f", {field}"
        super().__init__(f"{where}: {message}")
        self.app = app
        self.component = component
        self.field = field


class GuestTrap(RuntimeErrorBase):
    """Raised by host functions to trap the calling guest (caught by wasmtime, never by callers)."""


class NeedsWorkerThread(RuntimeErrorBase):
    """Raised by a host function that may wait or act outside the guest when its guest runs inline
    on the event loop, before it does anything: the run is given up and runs again on a worker
    thread (runtime/http/scheduling.py)."""


class DeadlineExceeded(RuntimeErrorBase):
    """The request's wall-clock budget ran out (epoch deadline or a host-side wait)."""
