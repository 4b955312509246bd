"""Spin SQLite databases (`fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.0.0`) on Python's sqlite3.

As Spin's in-process backend (`crates/sqlite-inproc`): database `default` is
`<state_dir>/sqlite_db.db` (in memory without a state dir), each database has one shared connection
in autocommit mode used under a lock, a statement is prepared and run with positional parameters,
and the result is the column names plus every row. Errors are the interface's `io(message)`.

Labels: `default` always exists; every other label a component of the app declares in `databases`
is defined as `<state_dir>/sqlite_db.<label>.db` (Spin would refuse to load the app instead),
unless the app's runtime config gives the label a `path` (then that file). A component may open only the labels it declares:
others get `access-denied`, exactly as Spin.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.capabilities.support.errors import GuestVisibleError

DEFAULT_LABEL = "default"
_BUSY_TIMEOUT_S = 30.0

# A value as the WIT `value` variant carries it: int (integer), float (real), str (text),
# bytes (blob), None (null).
SqlValue = int | float | str | bytes | None


class SqliteErrorKind(enum.Enum):
    NO_SUCH_DATABASE = "no-such-database"
    ACCESS_DENIED = "access-denied"
    INVALID_CONNECTION = "invalid-connection"
    DATABASE_FULL = "database-full"
    IO = "io"


class SqliteError(GuestVisibleError[SqliteErrorKind]):
    """A SQLite failure the guest receives as a `SqliteErrorKind` case."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[SqlValue]]


def database_path(state_dir: Path, label: str) -> Path:
    return state_dir / ("sqlite_db.db" if label == DEFAULT_LABEL else f"sqlite_db.{label}.db")


class _Database:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def connection(self) -> sqlite3.Connection:
        # Caller holds self.lock.
        if self._conn is None:
            try:
                if self.path is None:
                    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                else:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    conn = sqlite3.connect(
                        self.path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
                    )
            except (sqlite3.Error, OSError) as exc:
                raise SqliteError(SqliteErrorKind.IO, str(exc)) from None
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SqliteManager:
    """All databases of one app. Thread-safe; share one per app across requests."""

    def __init__(self, state_dir: Path | None, labels: Iterable[str], files: Mapping[str, Path] | None = None) -> None:
        names = {DEFAULT_LABEL, *labels}
        files = files or {}  # labels a runtime config puts in files of their own
        self._dbs = {
            name: _Database(files[name] if name in files else database_path(state_dir, name) if state_dir is not None else None)
            for name in names
        }

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self._dbs)

    def open(self, label: str, allowed: Iterable[str]) -> Connection:
        if label not in allowed:
            raise SqliteError(SqliteErrorKind.ACCESS_DENIED)
        db = self._dbs.get(label)
        if db is None:
            raise SqliteError(SqliteErrorKind.NO_SUCH_DATABASE)
        with db.lock:
            db.connection()  # open errors surface at `open`, as Spin
        return Connection(db)

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


class Connection:
    """One guest `connection` resource; remembers its own last rowid / change count."""

    def __init__(self, db: _Database) -> None:
        self._db = db
        self.last_insert_rowid = 0
        self.changes = 0
        self._left_open = False  # this connection's last statement left a transaction open

    def release(self) -> None:
        """End of the request: roll back a transaction this guest opened and never ended, so a
        trapped or careless guest cannot leave the shared connection stuck inside it."""
        with self._db.lock:
            conn = self._db.connection()
            if self._left_open and conn.in_transaction:
                conn.execute("ROLLBACK")
            self._left_open = False

    def execute(self, statement: str, parameters: Sequence[SqlValue]) -> QueryResult:
        with self._db.lock:
            conn = self._db.connection()
            try:
                cursor = conn.execute(statement, tuple(parameters))
                columns = [d[0] for d in cursor.description] if cursor.description else []
                rows = [list(r) for r in cursor.fetchall()]
                self.last_insert_rowid = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                self.changes = conn.execute("SELECT changes()").fetchone()[0]
                self._left_open = conn.in_transaction
            except sqlite3.Error as exc:
                full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                kind = SqliteErrorKind.DATABASE_FULL if full else SqliteErrorKind.IO
                raise SqliteError(kind, str(exc)) from None
            except (OverflowError, ValueError) as exc:  # e.g. an integer beyond i64, bad text
                raise SqliteError(SqliteErrorKind.IO, str(exc)) from None
        return QueryResult(columns=columns, rows=[[_value(v) for v in row] for row in rows])


def _value(v: object) -> SqlValue:
    if v is None or isinstance(v, int | float | str | bytes):
        return v
    return bytes(v)  # type: ignore[call-overload]  # memoryview from custom adapters
