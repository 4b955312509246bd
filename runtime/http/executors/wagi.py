"""The WAGI executor (`executor = { type = "wagi" }`), for both forms a WAGI app takes:

- a WASI preview1 command module (what Spin <= 3.1 pushed): run with wasmtime's own WASI
  preview1 and the component's files mounted read-only at `/`;
- a component exporting `wasi:cli/run` (Spin >= 3.2 pushes WAGI modules componentized with the
  command adapter): run on the runtime's linker, whose wasi:cli stdin/stdout read the request
  body and capture the output through the request's STDIN/STDOUT slots (runtime/capabilities/wasi/cli.py).

Either way: argv from the trigger's template, the CGI environment (runtime/http/executors/wagi_cgi.py), stdin =
the whole request body, stdout captured in memory. Returning or `exit(0)` is success; another exit
code or a trap is a 500, and so is an empty stdout (as Spin v3). `wasi:cli/run` returning `err`
is only logged, as Spin does. The response is parsed from stdout with Spin's rules.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from wasmtime import ExitTrap, Linker, WasiConfig

from runtime.capabilities.wasi.cli import STDIN, STDOUT
from runtime.capabilities.wasi.io import OutputStream
from runtime.core import context
from runtime.core.contract import ComponentInfo
from runtime.core.guest import PreparedGuest
from runtime.core.guest_io import GuestRequest, ResponseSink
from runtime.http.executors.wagi_cgi import WagiConfig, WagiRequest, build_argv, build_env, compose_response

ENTRYPOINT = "_start"
CLI_RUN = "wasi:cli/run"


class WagiError(Exception):
    """The program failed (non-zero exit, trap, or no output) -> 500."""


class WagiExecutor:
    name = "spin-wagi"
    blocking = False
    reuses_instances = False  # a fresh instance per request, whatever the app asks
    makes_spares = False

    def __init__(self, config: WagiConfig) -> None:
        self.config = config
        self._linker: Linker | None = None
        self._lock = threading.Lock()

    def _core_linker(self, guest: PreparedGuest) -> Linker:
        with self._lock:
            if self._linker is None:
                linker = Linker(guest.engine)
                linker.define_wasi()
                self._linker = linker
            return self._linker

    def run(self, guest: PreparedGuest, request: GuestRequest, response: ResponseSink) -> None:
        ctx = context.current()
        module = guest.module
        if module is None:
            raise WagiError("the WAGI executor runs WASI preview1 command modules")
        body, argv, env = _prepare(self.config, guest, request)
        stdout = bytearray()
        with tempfile.NamedTemporaryFile(prefix="wagi-stdin-") as stdin:
            stdin.write(body)
            stdin.flush()
            store = guest.new_store(ctx, ctx.remaining())
            wasi = WasiConfig()
            wasi.argv = argv
            wasi.env = sorted(env.items())
            wasi.stdin_file = stdin.name
            wasi.stdout_custom = stdout.extend
            if guest.component.files_dir is not None:
                wasi.preopen_dir(os.fspath(guest.component.files_dir), "/", fs_mutable=False)
            store.set_wasi(wasi)
            store.set_limits(memory_size=guest.settings.memory_bytes)  # set_wasi resets the limits
            instance = self._core_linker(guest).instantiate(store, module)
            start = instance.exports(store)[ENTRYPOINT]
            try:
                start(store)  # type: ignore[operator]
            except ExitTrap as exc:
                if exc.code != 0:
                    raise WagiError(f"WAGI program exited with code {exc.code}") from None
        _respond(guest, bytes(stdout), response)


class _CapturedStdout(OutputStream):
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        self.data += data


class WagiComponentExecutor:
    """WAGI as a component exporting wasi:cli/run."""

    name = "spin-wagi-component"
    blocking = False
    reuses_instances = False  # a fresh instance per request, whatever the app asks
    makes_spares = False

    def __init__(self, config: WagiConfig, export_name: str) -> None:
        self.config = config
        self.export_name = export_name  # e.g. "wasi:cli/run@0.2.0"

    def run(self, guest: PreparedGuest, request: GuestRequest, response: ResponseSink) -> None:
        ctx = context.current()
        body, argv, env = _prepare(self.config, guest, request)
        stdout = _CapturedStdout()
        ctx.set(STDIN, body)
        ctx.set(STDOUT, stdout)
        store = guest.new_store(ctx, ctx.remaining())
        wasi = WasiConfig()
        wasi.argv = argv
        wasi.env = sorted(env.items())
        store.set_wasi(wasi)  # wasi:cli/environment (arguments, variables) is wasmtime's own
        store.set_limits(memory_size=guest.settings.memory_bytes)
        instance = guest.instantiate(store)
        func, sig = guest.export(store, instance, self.export_name, "run")
        try:
            result = sig.call(func, store)
            func.post_return(store)
        except ExitTrap as exc:
            if exc.code != 0:
                raise WagiError(f"WAGI program exited with code {exc.code}") from None
        else:
            if getattr(result, "tag", "ok") != "ok":
                ctx.log.error("WAGI wasi:cli/run returned an error; answering from its output anyway")
        _respond(guest, bytes(stdout.data), response)


def _prepare(config: WagiConfig, guest: PreparedGuest, request: GuestRequest) -> tuple[bytes, list[str], dict[str, str]]:
    """The request body (stdin), argv and environment of one WAGI run."""
    body = request.body.read_all(context.current().deadline)
    path = request.path_with_query.partition("?")[0]
    env = build_env(
        WagiRequest(
            method=request.method,
            path=path,
            query=request.query,
            headers=_original_headers(request),
            body_length=len(body),
            client_ip=request.client_addr[0],
            http_version=request.http_version,
            spin_headers=list(request.spin_headers.items()),
        ),
        guest.component.locked.env,
    )
    return body, build_argv(config.argv, path, request.query), env


def _respond(guest: PreparedGuest, stdout: bytes, response: ResponseSink) -> None:
    if not stdout:
        raise WagiError(
            f"the {guest.component.id!r} component is configured to use the WAGI executor but did "
            "not write to stdout"
        )
    parsed = compose_response(stdout)
    response.start(parsed.status, [(k, v.encode("utf-8")) for k, v in parsed.headers])
    if parsed.body:
        response.write(parsed.body, context.current().deadline)
    response.finish()


def _original_headers(request: GuestRequest) -> list[tuple[str, str]]:
    """The client's headers: the runtime appended the computed spin-* ones, which WAGI passes
    as X_* variables instead (a client-sent spin-* header still becomes HTTP_SPIN_*)."""
    headers = [(k, v.decode("utf-8", "replace")) for k, v in request.headers]
    appended = request.spin_headers
    while headers and appended.get(headers[-1][0]) == headers[-1][1]:
        headers.pop()
    return headers


class WagiProvider:
    def select(
        self, info: ComponentInfo, executor_config: Mapping[str, Any] | None
    ) -> WagiExecutor | WagiComponentExecutor | None:
        if (executor_config or {}).get("type") != "wagi":
            return None
        config = WagiConfig.from_executor(executor_config or {})
        if info.kind == "module":
            return WagiExecutor(config) if ENTRYPOINT in info.exports else None
        export = info.exports_interface(CLI_RUN)
        return WagiComponentExecutor(config, export) if export is not None else None
