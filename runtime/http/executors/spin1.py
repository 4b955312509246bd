"""Spin 1.x core modules: `handle-http-request` with the wit-bindgen 0.2 canonical ABI.

Apps pushed by Spin <= 1.5 (lepton's own samples) carry the module as built: a WASI preview1
core module exporting `handle-http-request`, `canonical_abi_realloc`, `canonical_abi_free` and
`memory`. Spin >= 1.1 runs them by componentizing them into `fermyon:spin/inbound-http`
components; this executor calls the ABI directly, with the same request/response rules as the
inbound-http executor (405 for other methods, status outside 100..=600 -> 500, last header wins).

ABI (docs/reference/spin-compat.md, Spin 1.x ABI; flat parameters, results through a return area):
- export `handle-http-request(method, uri_ptr, uri_len, headers_ptr, headers_len, params_ptr,
  params_len, body_is_some, body_ptr, body_len) -> ret_ptr`; argument buffers are allocated in
  the guest with `canonical_abi_realloc(0, 0, align, size)` and owned by the guest; a list of
  `tuple<string,string>` is 16-byte elements `[k_ptr, k_len, v_ptr, v_len]`; the 28-byte
  return area holds `status: u16 @0`, `headers: option<list> @4 (ptrs @8, @12)`,
  `body: option<list<u8>> @16 (@20, @24)`.
- imports take their arguments flat and a return-area pointer last, into which the host writes
  the result (strings it returns are allocated with the guest's realloc):
  `spin-config.get-config(key_ptr, key_len, ret)` -> `expected<string, error>`: tag u8 @0, ok
  string @4/@8, or error case u8 @4 with its string @8/@12;
  `wasi-outbound-http.request(<request flat>, ret)` -> `expected<response, http-error>`: tag
  @0, response @4 (status @4, headers option @8/@12/@16, body option @20/@24/@28), or the
  http-error enum u8 @4;
  `key-value.{open,get,set,delete,exists,get-keys,close}` (Spin 1.4+; u32 store handles) ->
  `expected<T, error>`: tag @0, T @4, or the error case u8 @4 (its `io` string @8/@12).
Other imports outside `wasi_snapshot_preview1` (redis, pg, mysql, sqlite, llm) link as traps.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

from wasmtime import Caller, FuncType, Linker, Module, ValType, WasiConfig

from runtime.capabilities.key_value import host as key_value_host
from runtime.capabilities.key_value.store import KvError, KvErrorKind, Store
from runtime.capabilities.outbound_http.host import spin_send
from runtime.capabilities.variables.host import app_variables
from runtime.capabilities.variables.resolve import VariableError, VariableErrorKind
from runtime.core import context
from runtime.core.contract import ComponentInfo
from runtime.core.guest import PreparedGuest
from runtime.core.guest_io import GuestRequest, ResponseSink
from runtime.errors import GuestTrap
from runtime.http.executors.inbound_http import response_headers, start_buffered_run, status_ok

HANDLER = "handle-http-request"
REALLOC = "canonical_abi_realloc"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
HTTP_ERRORS = ("success", "destination-not-allowed", "invalid-url", "request-error", "runtime-error",
               "too-many-requests")
_WASI_MODULES = frozenset({"wasi_snapshot_preview1", "wasi_unstable"})


class GuestMemory:
    """Reads and writes one instance's linear memory; allocates through its realloc."""

    def __init__(self, store: Any, memory: Any, realloc: Any) -> None:
        self.store = store
        self.memory = memory
        self.realloc = realloc

    def alloc(self, data: bytes, align: int = 1) -> int:
        ptr = int(self.realloc(self.store, 0, 0, align, len(data)))
        if data:
            self.memory.write(self.store, data, ptr)
        return ptr

    def read(self, ptr: int, length: int) -> bytes:
        if length == 0:
            return b""
        return bytes(self.memory.read(self.store, ptr, ptr + length))

    def string(self, ptr: int, length: int) -> str:
        return self.read(ptr, length).decode("utf-8")

    def write(self, ptr: int, data: bytes) -> None:
        self.memory.write(self.store, data, ptr)

    def alloc_string(self, text: str) -> tuple[int, int]:
        data = text.encode("utf-8")
        return self.alloc(data, 1), len(data)

    def alloc_pairs(self, pairs: list[tuple[str, str]]) -> tuple[int, int]:
        """A list<tuple<string,string>>: 16-byte elements of (ptr, len) pairs."""
        elements = bytearray()
        for key, value in pairs:
            kp, kl = self.alloc_string(key)
            vp, vl = self.alloc_string(value)
            elements += struct.pack("<IIII", kp, kl, vp, vl)
        return self.alloc(bytes(elements), 4), len(pairs)

    def read_pairs(self, ptr: int, count: int) -> list[tuple[str, str]]:
        raw = self.read(ptr, 16 * count)
        out = []
        for i in range(count):
            kp, kl, vp, vl = struct.unpack_from("<IIII", raw, 16 * i)
            out.append((self.string(kp, kl), self.string(vp, vl)))
        return out


def _memory_of(caller: Caller) -> GuestMemory:
    memory = caller.get("memory")
    realloc = caller.get(REALLOC)
    if memory is None or realloc is None:
        raise GuestTrap("Spin 1.x module must export `memory` and `canonical_abi_realloc`")
    return GuestMemory(caller, memory, realloc)


# -- imports ---------------------------------------------------------------------------------------

_CONFIG_ERRORS = {"provider": 0, "invalid-key": 1, "invalid-schema": 2, "other": 3}


def _get_config(caller: Caller, key_ptr: int, key_len: int, ret: int) -> None:
    mem = _memory_of(caller)
    key = mem.string(key_ptr, key_len)
    ctx = context.current()
    try:
        value = app_variables(ctx.app, ctx.settings).component(ctx.component.id).get(key)
    except VariableError as exc:
        case = {VariableErrorKind.INVALID_NAME: "invalid-key", VariableErrorKind.UNDEFINED: "provider"}.get(
            exc.kind, "other"
        )
        ptr, length = mem.alloc_string(exc.message)
        mem.write(ret, struct.pack("<BxxxBxxxII", 1, _CONFIG_ERRORS[case], ptr, length))
        return
    ptr, length = mem.alloc_string(value)
    mem.write(ret, struct.pack("<BxxxII", 0, ptr, length))


def _outbound_request(caller: Caller, method: int, uri_ptr: int, uri_len: int, hdr_ptr: int, hdr_len: int,
                      params_ptr: int, params_len: int, body_some: int, body_ptr: int, body_len: int,
                      ret: int) -> None:
    mem = _memory_of(caller)
    if not 0 <= method < len(METHODS):
        raise GuestTrap(f"invalid method discriminant {method}")
    uri = mem.string(uri_ptr, uri_len)
    headers = mem.read_pairs(hdr_ptr, hdr_len)
    body = mem.read(body_ptr, body_len) if body_some else None
    result = spin_send(METHODS[method], uri, headers, body)
    if isinstance(result, str):
        mem.write(ret, struct.pack("<BxxxB", 1, HTTP_ERRORS.index(result)))
        return
    hptr, hlen = mem.alloc_pairs([(k, v) for k, v in result.headers])
    bptr = mem.alloc(result.body, 1)
    mem.write(ret, struct.pack("<BxxxHxxBxxxIIBxxxII", 0, result.status, 1, hptr, hlen, 1, bptr, len(result.body)))


# key-value (Spin 1.4+): the v1 error variant's case numbers.
_KV_CASES = {
    KvErrorKind.STORE_TABLE_FULL: 0,
    KvErrorKind.NO_SUCH_STORE: 1,
    KvErrorKind.ACCESS_DENIED: 2,
}
_KV_INVALID_STORE, _KV_NO_SUCH_KEY, _KV_IO = 3, 4, 5


def _kv_call(fn: Callable[..., bytes]) -> Callable[..., None]:
    """Wrap a key-value operation: find the store, write `ok` (fn's payload) or the error."""

    def call(caller: Caller, handle: int, *args: int) -> None:
        mem = _memory_of(caller)
        ret = args[-1]
        try:
            store = context.current().table.get(handle, Store)
        except GuestTrap:
            mem.write(ret, struct.pack("<BxxxB", 1, _KV_INVALID_STORE))
            return
        try:
            payload = fn(mem, store, *args[:-1])
        except _NoSuchKey:
            mem.write(ret, struct.pack("<BxxxB", 1, _KV_NO_SUCH_KEY))
        except KvError as exc:
            _kv_error(mem, ret, exc)
        else:
            mem.write(ret, b"\0\0\0\0" + payload)

    return call


class _NoSuchKey(Exception):
    pass


def _kv_error(mem: GuestMemory, ret: int, exc: KvError) -> None:
    case = _KV_CASES.get(exc.kind)
    if case is not None:
        mem.write(ret, struct.pack("<BxxxB", 1, case))
    else:
        ptr, length = mem.alloc_string(exc.message)
        mem.write(ret, struct.pack("<BxxxBxxxII", 1, _KV_IO, ptr, length))


def _kv_open(caller: Caller, name_ptr: int, name_len: int, ret: int) -> None:
    mem = _memory_of(caller)
    try:
        handle = key_value_host.open_store(mem.string(name_ptr, name_len))
    except KvError as exc:
        _kv_error(mem, ret, exc)
        return
    mem.write(ret, struct.pack("<BxxxI", 0, handle))


def _kv_get(mem: GuestMemory, store: Store, key_ptr: int, key_len: int) -> bytes:
    value = store.get(mem.string(key_ptr, key_len))
    if value is None:
        raise _NoSuchKey
    return struct.pack("<II", mem.alloc(value, 1), len(value))


def _kv_set(mem: GuestMemory, store: Store, key_ptr: int, key_len: int, value_ptr: int, value_len: int) -> bytes:
    store.set(mem.string(key_ptr, key_len), mem.read(value_ptr, value_len))
    return b""


def _kv_delete(mem: GuestMemory, store: Store, key_ptr: int, key_len: int) -> bytes:
    store.delete(mem.string(key_ptr, key_len))
    return b""


def _kv_exists(mem: GuestMemory, store: Store, key_ptr: int, key_len: int) -> bytes:
    return struct.pack("<B", int(store.exists(mem.string(key_ptr, key_len))))


def _kv_get_keys(mem: GuestMemory, store: Store) -> bytes:
    keys = store.get_keys()
    elements = b"".join(struct.pack("<II", *mem.alloc_string(k)) for k in keys)
    return struct.pack("<II", mem.alloc(elements, 4), len(keys))


def _kv_close(caller: Caller, handle: int) -> None:
    key_value_host.close_store(handle)


_I32 = ValType.i32()
_IMPORTS: dict[tuple[str, str], tuple[int, Callable[..., None]]] = {
    ("spin-config", "get-config"): (3, _get_config),
    ("wasi-outbound-http", "request"): (11, _outbound_request),
    ("key-value", "open"): (3, _kv_open),
    ("key-value", "get"): (4, _kv_call(_kv_get)),
    ("key-value", "set"): (6, _kv_call(_kv_set)),
    ("key-value", "delete"): (4, _kv_call(_kv_delete)),
    ("key-value", "exists"): (4, _kv_call(_kv_exists)),
    ("key-value", "get-keys"): (2, _kv_call(_kv_get_keys)),
    ("key-value", "close"): (1, _kv_close),
}


def _trap(module: str, name: str) -> Callable[..., Any]:
    def trap(*args: Any) -> Any:
        raise GuestTrap(f"unsupported import {module}#{name}")

    return trap


def build_linker(engine: Any, module: Module) -> Linker:
    linker = Linker(engine)
    linker.define_wasi()
    for imp in module.imports:
        if imp.module in _WASI_MODULES or not isinstance(imp.type, FuncType):
            continue
        known = _IMPORTS.get((imp.module, imp.name or ""))
        if known is not None and len(imp.type.params) == known[0] and not imp.type.results:
            linker.define_func(imp.module, imp.name or "", imp.type, known[1], access_caller=True)
        else:
            linker.define_func(imp.module, imp.name or "", imp.type, _trap(imp.module, imp.name or ""))
    return linker


# -- executor --------------------------------------------------------------------------------------


class Spin1Executor:
    name = "spin1-module"
    reuses_instances = False  # a fresh instance per request, whatever the app asks
    makes_spares = False

    def __init__(self, blocking: bool) -> None:
        self.blocking = blocking  # outbound HTTP waits on the network
        self._linker: Linker | None = None
        self._lock = threading.Lock()

    def _core_linker(self, guest: PreparedGuest) -> Linker:
        with self._lock:
            if self._linker is None:
                assert guest.module is not None
                self._linker = build_linker(guest.engine, guest.module)
            return self._linker

    def run(self, guest: PreparedGuest, request: GuestRequest, response: ResponseSink) -> None:
        run = start_buffered_run(guest, request, response)
        if run is None:
            return
        ctx, headers, body, store = run.ctx, run.headers, run.body, run.store
        assert guest.module is not None
        wasi = WasiConfig()
        wasi.env = sorted(guest.component.locked.env.items())
        if guest.component.files_dir is not None:
            wasi.preopen_dir(os.fspath(guest.component.files_dir), "/", fs_mutable=False)
        store.set_wasi(wasi)
        store.set_limits(memory_size=guest.settings.memory_bytes)  # set_wasi resets the limits
        instance = self._core_linker(guest).instantiate(store, guest.module)
        exports = instance.exports(store)
        init = exports.get("_initialize")
        if init is not None:
            init(store)  # type: ignore[operator]
        memory, realloc, handler = exports.get("memory"), exports.get(REALLOC), exports.get(HANDLER)
        if memory is None or realloc is None or handler is None:
            raise GuestTrap("not a Spin 1.x HTTP module (missing memory, realloc or handle-http-request)")
        mem = GuestMemory(store, memory, realloc)
        uri_ptr, uri_len = mem.alloc_string(request.path_with_query)
        hdr_ptr, hdr_len = mem.alloc_pairs(headers)
        params_ptr, params_len = mem.alloc_pairs([])
        body_ptr = mem.alloc(body, 1)
        ret = int(handler(  # type: ignore[operator]
            store, METHODS.index(request.method), uri_ptr, uri_len, hdr_ptr, hdr_len, params_ptr, params_len,
            1, body_ptr, len(body),
        ))
        status, h_some, h_ptr, h_len, b_some, b_ptr, b_len = struct.unpack("<HxxBxxxIIBxxxII", mem.read(ret, 28))
        if not status_ok(status):
            ctx.log.error("guest returned a malformed HTTP status code %d", status)
            response.start(500, [])
            response.finish()
            return
        out_headers = response_headers(mem.read_pairs(h_ptr, h_len) if h_some else None)
        payload = mem.read(b_ptr, b_len) if b_some else b""
        response.start(status, out_headers)
        if payload:
            response.write(payload, ctx.deadline)
        response.finish()


class Spin1Provider:
    """Claims core modules exporting `handle-http-request` (executor absent, `spin` or `http`)."""

    def select(self, info: ComponentInfo, executor_config: Mapping[str, Any] | None) -> Spin1Executor | None:
        if info.kind != "module" or HANDLER not in info.exports:
            return None
        if (executor_config or {}).get("type", "spin") not in ("http", "spin"):
            return None
        blocking = any(name.startswith("wasi-outbound-http/") for name in info.imports)
        return Spin1Executor(blocking)
