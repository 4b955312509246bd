"""Guest bindings for SQLite: `fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.0.0` (adds
`last-insert-rowid` and `changes`) and the unversioned Spin 1.x `fermyon:spin/sqlite` (u32 handles).

`open` checks the database label against the component's `databases` (access-denied) first, as
Spin v3's `factor-sqlite`. Values cross as wasmtime-py's bare variant values (int, float, str,
bytes, None). `spin:sqlite@3.1.0`'s additions are async functions (component-model async, which
this runtime does not support); only the synchronous functions are served.
"""

from __future__ import annotations

from typing import Any

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.sqlite.store import (
    Connection,
    QueryResult,
    SqliteError,
    SqliteErrorKind,
    SqliteManager,
    SqlValue,
)
from runtime.capabilities.support import per_app
from runtime.capabilities.support.labelled import LabelledStorage
from runtime.capabilities.support.wit import case, err, ok, record
from runtime.core import context
from runtime.core.contract import BaseCapability, InterfaceImpl, resource_type_id
from runtime.core.values import own, rep
from runtime.errors import GuestTrap
from runtime.telemetry.hooks import HostSpan, first_arg, second_arg, traced
from runtime.telemetry.names import DB_SYSTEM_NAME
from runtime.types import AppSettings

NAME = "spin-sqlite"

V2_CONNECTION = resource_type_id("fermyon:spin/sqlite", "connection")
V3_CONNECTION = resource_type_id("spin:sqlite/sqlite", "connection")


STORAGE = LabelledStorage(NAME, "databases", SqliteManager)


def _error(exc: SqliteError) -> Any:
    if exc.kind is SqliteErrorKind.IO:
        return err(case("io", exc.message))
    return err(case(exc.kind.value))


def _open(label: str) -> int:
    prepared = STORAGE.current()
    ctx = context.current()
    config = ctx.settings.runtime_config
    configured = config.sqlite_database(label) if config is not None else None
    manager = prepared.manager
    if configured is not None and configured.path is not None:
        # `[sqlite_database.LABEL] type = "spin" path = ...`: one shared database per file, as the
        # state dir's are shared by the app's versions during a swap.
        path = configured.path
        manager = per_app.per_key((NAME, "file", path, label), lambda: SqliteManager(None, (label,), files={label: path}))
    connection = manager.open(label, prepared.allowed)
    ctx.cleanups.append(connection.release)
    return ctx.table.push(connection)


def _result(result: QueryResult) -> Any:
    return record(columns=result.columns, rows=[record(values=row) for row in result.rows])


def _params(parameters: list[Any]) -> list[SqlValue]:
    return [bytes(p) if isinstance(p, bytearray | memoryview | list) else p for p in parameters]


def _resource_funcs(type_id: int, v3: bool) -> dict[str, Any]:
    def conn(store: Any, handle: Any) -> Connection:
        return context.current().table.get(rep(store, handle), Connection)

    def open_(store: Any, label: str) -> Any:
        try:
            return ok(own(_open(label), type_id))
        except SqliteError as exc:
            return _error(exc)

    def execute(store: Any, handle: Any, statement: str, parameters: list[Any]) -> Any:
        connection = conn(store, handle)
        try:
            return ok(_result(connection.execute(statement, _params(parameters))))
        except SqliteError as exc:
            return _error(exc)

    funcs: dict[str, Any] = {"[static]connection.open": open_, "[method]connection.execute": execute}
    if v3:
        funcs["[method]connection.last-insert-rowid"] = lambda store, handle: conn(store, handle).last_insert_rowid
        funcs["[method]connection.changes"] = lambda store, handle: conn(store, handle).changes
    return funcs


def _v1_funcs() -> dict[str, Any]:
    def open_(store: Any, label: str) -> Any:
        try:
            return ok(_open(label))
        except SqliteError as exc:
            return _error(exc)

    def execute(store: Any, handle: int, statement: str, parameters: list[Any]) -> Any:
        try:
            connection = context.current().table.get(handle, Connection)
        except GuestTrap:
            return err(case("invalid-connection"))
        try:
            return ok(_result(connection.execute(statement, _params(parameters))))
        except SqliteError as exc:
            return _error(exc)

    def close(store: Any, handle: int) -> None:
        context.current().table.discard(handle)

    return {"open": open_, "execute": execute, "close": close}


def _drop(rep_: int) -> None:
    context.current().table.discard(rep_)


# Spin's spans (factor-sqlite/src/host.rs): `open` records the label as `database`, `execute` the
# statement as `query` (never its parameters); both carry db.system.name.
_SQLITE = {DB_SYSTEM_NAME: "sqlite"}
_OPEN = HostSpan("spin_sqlite.open", _SQLITE, first_arg("database"))
_EXECUTE = HostSpan("spin_sqlite.execute", _SQLITE, second_arg("query"))
_SPANS = {"[static]connection.open": _OPEN, "[method]connection.execute": _EXECUTE, "open": _OPEN,
          "execute": _EXECUTE}


class SqliteCapability(BaseCapability):
    name = NAME
    blocking = False  # local SQLite calls; long queries are bounded by the request deadline
    interfaces = frozenset({"fermyon:spin/sqlite", "spin:sqlite/sqlite"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "spin:sqlite/sqlite":
            return InterfaceImpl(
                resources={"connection": (V3_CONNECTION, _drop)},
                funcs=traced(_resource_funcs(V3_CONNECTION, v3=True), _SPANS),
            )
        if version is None:
            return InterfaceImpl(funcs=traced(_v1_funcs(), _SPANS))
        return InterfaceImpl(
            resources={"connection": (V2_CONNECTION, _drop)},
            funcs=traced(_resource_funcs(V2_CONNECTION, v3=False), _SPANS),
        )

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        return STORAGE.prepare(app, component, settings)
