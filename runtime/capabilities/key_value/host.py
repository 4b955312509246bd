"""Guest bindings for key-value: `fermyon:spin/key-value@2.0.0`, the unversioned Spin 1.x
`fermyon:spin/key-value` (u32 handles), and `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2`.

Semantics follow Spin v3's `factor-key-value/src/host.rs`: `open` checks the label against the
component's `key_value_stores` (access-denied) before anything else; wasi:keyvalue maps errors to
its own cases and refuses list-keys cursors; an absent key is `none` (v2 / wasi) or `no-such-key`
(v1). The storage is runtime/capabilities/key_value/store.py (SQLite under the app's state dir).

`spin:key-value/key-value@3.0.0` is not served: it needs component-model async, which this runtime
(wasmtime-py 50) does not support.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.key_value.redis_store import RedisStore, default_prefix
from runtime.capabilities.key_value.store import KeyValueManager, KvError, KvErrorKind, Store
from runtime.capabilities.support import per_app
from runtime.capabilities.support.labelled import LabelledStorage
from runtime.capabilities.support.wit import case, err, ok, record
from runtime.core import context
from runtime.core.context import StateKey
from runtime.core.contract import BaseCapability, InterfaceImpl, resource_type_id
from runtime.core.values import own, rep
from runtime.errors import GuestTrap
from runtime.telemetry.hooks import HostSpan, first_arg, traced
from runtime.types import AppSettings

NAME = "spin-key-value"
MAX_OPEN_STORES = 256  # Spin's DEFAULT_STORE_TABLE_CAPACITY, per request
_OPEN_STORES: StateKey[int] = StateKey("key-value.open-stores")  # stores this request holds open

SPIN_STORE = resource_type_id("fermyon:spin/key-value", "store")
WASI_BUCKET = resource_type_id("wasi:keyvalue/store", "bucket")
WASI_CAS = resource_type_id("wasi:keyvalue/atomics", "cas")


STORAGE = LabelledStorage(NAME, "key_value_stores", KeyValueManager)


def _open(label: str) -> int:
    """Open a store for the current request; returns its rep. Raises KvError."""
    ctx = context.current()
    prepared = STORAGE.current()
    count = ctx.get(_OPEN_STORES) or 0
    if count >= MAX_OPEN_STORES:
        raise KvError(KvErrorKind.STORE_TABLE_FULL)
    configured = ctx.settings.runtime_config.key_value_store(label) if ctx.settings.runtime_config else None
    if configured is None:
        store = prepared.manager.open(label, prepared.allowed)
    elif label not in prepared.allowed:  # checked before anything touches the store, as in Spin
        raise KvError(KvErrorKind.ACCESS_DENIED)
    elif configured.type == "redis":
        assert configured.url is not None
        prefix = configured.key_prefix
        if prefix is None:
            prefix = default_prefix(ctx.settings.app_name or ctx.app.locked.name, label)
        store = RedisStore(label, configured.url, prefix)
    elif configured.path is not None:
        # A `type = "spin"` store in its own file; shared by the app's versions, as the state dir's.
        path = configured.path
        manager = per_app.per_key((NAME, "file", path, label), lambda: KeyValueManager(None, (label,), file=path))
        store = manager.open(label, prepared.allowed)
    else:
        store = prepared.manager.open(label, prepared.allowed)
    ctx.set(_OPEN_STORES, count + 1)
    return ctx.table.push(store)


def open_store(label: str) -> int:
    """Open `label` for the current request (Spin 1.x core modules' u32 handles); KvError."""
    return _open(label)


def close_store(handle: int) -> None:
    _drop(handle)


def _store(store: Any, handle: Any) -> Store:
    return context.current().table.get(rep(store, handle), Store)


def _drop(rep_: int) -> None:
    ctx = context.current()
    if ctx.table.discard(rep_) is not None:
        ctx.set(_OPEN_STORES, max(0, (ctx.get(_OPEN_STORES) or 1) - 1))


def _store_open(type_id: int, on_error: Callable[[KvError], Any]) -> Any:
    """A store constructor: the label opened for this request as an owned `type_id` handle."""

    def open_(store: Any, label: str) -> Any:
        try:
            return ok(own(_open(label), type_id))
        except KvError as exc:
            return on_error(exc)

    return open_


def _store_method(fn: Any, on_error: Callable[[KvError], Any]) -> Any:
    """A resource method: `fn` on the store behind the handle; ok(result), or on_error's err."""

    def call(store: Any, handle: Any, *args: Any) -> Any:
        try:
            return ok(fn(_store(store, handle), *args))
        except KvError as exc:
            return on_error(exc)

    return call


# -- fermyon:spin/key-value@2.0.0 -------------------------------------------------------------


def _v2_error(exc: KvError) -> Any:
    if exc.kind is KvErrorKind.OTHER:
        return err(case("other", exc.message))
    return err(case(exc.kind.value))


def _v2_funcs() -> dict[str, Any]:
    def method(fn: Any) -> Any:
        return _store_method(fn, _v2_error)

    return {
        "[static]store.open": _store_open(SPIN_STORE, _v2_error),
        "[method]store.get": method(lambda s, key: s.get(key)),
        "[method]store.set": method(lambda s, key, value: s.set(key, value)),
        "[method]store.delete": method(lambda s, key: s.delete(key)),
        "[method]store.exists": method(lambda s, key: s.exists(key)),
        "[method]store.get-keys": method(lambda s: s.get_keys()),
    }


# -- fermyon:spin/key-value (unversioned, Spin 1.x) --------------------------------------------


class _NoSuchKey(Exception):
    """v1 `get` of an absent key is the error `no-such-key`."""


def _v1_get(s: Store, key: str) -> bytes:
    value = s.get(key)
    if value is None:
        raise _NoSuchKey
    return value


def _v1_error(exc: KvError) -> Any:
    return err(case("io", exc.message) if exc.kind is KvErrorKind.OTHER else case(exc.kind.value))


def _v1_funcs() -> dict[str, Any]:
    def with_store(fn: Any) -> Any:
        def call(store: Any, handle: int, *args: Any) -> Any:
            try:
                obj = context.current().table.get(handle, Store)
            except GuestTrap:
                return err(case("invalid-store"))
            try:
                return ok(fn(obj, *args))
            except _NoSuchKey:
                return err(case("no-such-key"))
            except KvError as exc:
                return _v1_error(exc)

        return call

    def open_(store: Any, label: str) -> Any:
        try:
            return ok(_open(label))
        except KvError as exc:
            return _v1_error(exc)

    def close(store: Any, handle: int) -> None:
        _drop(handle)

    return {
        "open": open_,
        "get": with_store(_v1_get),
        "set": with_store(lambda s, key, value: s.set(key, value)),
        "delete": with_store(lambda s, key: s.delete(key)),
        "exists": with_store(lambda s, key: s.exists(key)),
        "get-keys": with_store(lambda s: s.get_keys()),
        "close": close,
    }


# -- wasi:keyvalue/{store,batch,atomics}@0.2.0-draft2 -----------------------------------------


def _wasi_error_value(exc: KvError) -> Any:
    if exc.kind in (KvErrorKind.ACCESS_DENIED, KvErrorKind.NO_SUCH_STORE):
        return case(exc.kind.value)
    if exc.kind is KvErrorKind.STORE_TABLE_FULL:
        return case("other", "store table full")
    return case("other", exc.message)


def _wasi_error(exc: KvError) -> Any:
    return err(_wasi_error_value(exc))


def _wasi_call(fn: Any) -> Any:
    return _store_method(fn, _wasi_error)


def _wasi_store_funcs() -> dict[str, Any]:
    def list_keys(store: Any, handle: Any, cursor: str | None) -> Any:
        bucket = _store(store, handle)
        if cursor is not None:
            return err(case("other", "list_keys: cursor not supported"))
        try:
            return ok(record(keys=bucket.get_keys(), cursor=None))
        except KvError as exc:
            return _wasi_error(exc)

    return {
        "open": _store_open(WASI_BUCKET, _wasi_error),
        "[method]bucket.get": _wasi_call(lambda s, key: s.get(key)),
        "[method]bucket.set": _wasi_call(lambda s, key, value: s.set(key, value)),
        "[method]bucket.delete": _wasi_call(lambda s, key: s.delete(key)),
        "[method]bucket.exists": _wasi_call(lambda s, key: s.exists(key)),
        "[method]bucket.list-keys": list_keys,
    }


def _wasi_batch_funcs() -> dict[str, Any]:
    return {
        "get-many": _wasi_call(lambda s, keys: s.get_many(keys)),
        "set-many": _wasi_call(lambda s, items: s.set_many([(k, bytes(v)) for k, v in items])),
        "delete-many": _wasi_call(lambda s, keys: s.delete_many(keys)),
    }


@dataclass
class _Cas:
    store: Store
    key: str
    observed: bytes | None = None


def _wasi_atomics_funcs() -> dict[str, Any]:
    def cas_new(store: Any, bucket: Any, key: str) -> Any:
        ctx = context.current()
        return ok(own(ctx.table.push(_Cas(_store(store, bucket), key)), WASI_CAS))

    def cas_current(store: Any, handle: Any) -> Any:
        cas = context.current().table.get(rep(store, handle), _Cas)
        try:
            cas.observed = cas.store.get(cas.key)
        except KvError as exc:
            return _wasi_error(exc)
        return ok(cas.observed)

    def increment(store: Any, bucket: Any, key: str, delta: int) -> Any:
        return _wasi_call(lambda s: s.increment(key, delta))(store, bucket)

    def swap(store: Any, handle: Any, value: bytes) -> Any:
        ctx = context.current()
        cas_rep = rep(store, handle)  # an owned handle: the cas is consumed by swap
        cas = ctx.table.take(cas_rep, _Cas)
        try:
            swapped = cas.store.compare_and_swap(cas.key, cas.observed, value)
        except KvError as exc:
            return err(_wasi_error_value(exc))  # cas-error.store-error(error)
        if swapped:
            return ok(None)
        # cas-failed hands the guest a fresh cas to retry with (its `current` re-reads).
        return err(own(ctx.table.push(_Cas(cas.store, cas.key)), WASI_CAS))

    return {
        "[static]cas.new": cas_new,
        "[method]cas.current": cas_current,
        "increment": increment,
        "swap": swap,
    }


def _drop_cas(rep_: int) -> None:
    context.current().table.discard(rep_)


def _spans(prefix: str, funcs: dict[str, str]) -> dict[str, HostSpan]:
    return {func: HostSpan(f"{prefix}.{op}") for func, op in funcs.items()}


_SPIN_OPEN = HostSpan("spin_key_value.open", from_args=first_arg("name"))
# Spin's spans (factor-key-value/src/host.rs): Spin 1.x's unversioned interface is served by the
# 2.0 functions there, so both have the same names; `open` records the label as `name`.
_SPIN_SPANS = {
    "[static]store.open": _SPIN_OPEN, "open": _SPIN_OPEN,
    **_spans("spin_key_value", {
        "[method]store.get": "get", "[method]store.set": "set", "[method]store.delete": "delete",
        "[method]store.exists": "exists", "[method]store.get-keys": "get_keys",
        "get": "get", "set": "set", "delete": "delete", "exists": "exists", "get-keys": "get_keys",
    }),
}
_WASI_SPANS = {
    "wasi:keyvalue/store": _spans("wasi_key_value", {
        "open": "open", "[method]bucket.get": "get", "[method]bucket.set": "set",
        "[method]bucket.delete": "delete", "[method]bucket.exists": "exists", "[method]bucket.list-keys": "list_keys",
    }),
    "wasi:keyvalue/batch": _spans("spin_key_value", {
        "get-many": "get_many", "set-many": "set_many", "delete-many": "delete_many",
    }),
    "wasi:keyvalue/atomics": {
        **_spans("wasi_key_value_cas", {"[static]cas.new": "new", "[method]cas.current": "current"}),
        **_spans("spin_key_value", {"increment": "increment", "swap": "swap"}),
    },
}


class KeyValueCapability(BaseCapability):
    name = NAME
    blocking = False  # SQLite calls are short and local; they never wait on the network
    interfaces = frozenset(
        {"fermyon:spin/key-value", "wasi:keyvalue/store", "wasi:keyvalue/batch", "wasi:keyvalue/atomics"}
    )

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        spans = _WASI_SPANS.get(interface, _SPIN_SPANS)
        if interface == "fermyon:spin/key-value":
            if version is None:
                return InterfaceImpl(funcs=traced(_v1_funcs(), spans))
            return InterfaceImpl(resources={"store": (SPIN_STORE, _drop)}, funcs=traced(_v2_funcs(), spans))
        if interface == "wasi:keyvalue/store":
            return InterfaceImpl(resources={"bucket": (WASI_BUCKET, _drop)}, funcs=traced(_wasi_store_funcs(), spans))
        if interface == "wasi:keyvalue/batch":
            return InterfaceImpl(funcs=traced(_wasi_batch_funcs(), spans))
        return InterfaceImpl(resources={"cas": (WASI_CAS, _drop_cas)}, funcs=traced(_wasi_atomics_funcs(), spans))

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        return STORAGE.prepare(app, component, settings)
