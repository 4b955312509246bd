"""Spin key-value stores backed by SQLite, in the same file and schema as Spin's own SQLite store.

Spin keeps its default store in `<state_dir>/sqlite_key_value.db`, table `spin_key_value(store,
key, value)` (`crates/key-value-spin`); using the same file and schema means a state directory
written by `spin up --state-dir` can be served by lepton-router and back. Unlike Spin (which keeps
OCI apps' stores in memory), the state dir makes the data survive restarts and app swaps. Without
a state dir the store is in memory, as in Spin.

Labels: `default` always exists. Spin fails the load for any other label that no runtime config
defines; lepton-router is more lenient: every label some component of the app declares in
`key_value_stores` is defined (as another store in the same file) unless the app's runtime config
(routes.toml `runtime_config`) puts it elsewhere: in Redis (redis_store.py) or in a SQLite file of
its own (`type = "spin"` with a `path`). A component may open only
the labels it declares: others get `access-denied`, exactly as Spin.

Concurrency: one connection per manager, used under a lock (sqlite3 objects are not
thread-safe); WAL mode plus a busy timeout let several managers (the old and new versions of an
app during a swap) share the file. Every call is short and transactional.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from runtime.capabilities.support.errors import GuestVisibleError

T = TypeVar("T")

KV_FILE_NAME = "sqlite_key_value.db"
DEFAULT_LABEL = "default"
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = """CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)"""
_UPSERT = (
    "INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT(store, key) DO UPDATE SET value=excluded.value"
)


class KvErrorKind(enum.Enum):
    """The cases of `fermyon:spin/key-value` `error` (wasi:keyvalue maps them, see bindings)."""

    STORE_TABLE_FULL = "store-table-full"
    NO_SUCH_STORE = "no-such-store"
    ACCESS_DENIED = "access-denied"
    OTHER = "other"


class KvError(GuestVisibleError[KvErrorKind]):
    """A key-value failure the guest receives as a `KvErrorKind` case."""


class KeyValueManager:
    """All stores of one app (one SQLite file). Thread-safe; share one per app across requests."""

    def __init__(self, state_dir: Path | None, labels: Iterable[str], file: Path | None = None) -> None:
        self.labels = frozenset({DEFAULT_LABEL, *labels})
        self._lock = threading.Lock()
        # `file`: a runtime config's `type = "spin"` `path`; otherwise the state dir's file.
        self._path = file if file is not None else state_dir / KV_FILE_NAME if state_dir is not None else None
        self._conn: sqlite3.Connection | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    def open(self, label: str, allowed: Iterable[str]) -> Store:
        """`store.open`: access-denied unless the component declares the label."""
        if label not in allowed:
            raise KvError(KvErrorKind.ACCESS_DENIED)
        if label not in self.labels:
            raise KvError(KvErrorKind.NO_SUCH_STORE)
        self._connection()  # surface I/O problems at open, as Spin's `after_open`
        return Store(self, label)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        # Lazily opened: most apps never touch key-value. Callers hold no lock here.
        with self._lock:
            if self._conn is None:
                self._conn = _connect(self._path)
            return self._conn

    def run(self, fn: Callable[[sqlite3.Connection], T], write: bool = False) -> T:
        """Run `fn` under the lock; writes run in one IMMEDIATE transaction (atomic across the
        managers sharing the file, e.g. old and new app versions during a swap)."""
        conn = self._connection()
        with self._lock:
            try:
                if not write:
                    return fn(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise KvError(KvErrorKind.OTHER, str(exc)) from None


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting out other connections doing the same.

    Two managers opening a new file at once (an app's old and new versions during a swap) race to
    change its journal mode, and SQLite answers the loser "database is locked" at once, without
    its busy handler. So the change is retried, within the same busy timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _connect(path: Path | None) -> sqlite3.Connection:
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see KeyValueManager.run).
        if path is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            _enable_wal(conn)
        conn.execute(_SCHEMA)
        return conn
    except (sqlite3.Error, OSError) as exc:
        raise KvError(KvErrorKind.OTHER, f"cannot open key-value database: {exc}") from None


class Store:
    """An open store (one label). Methods mirror `fermyon:spin/key-value` + wasi:keyvalue."""

    def __init__(self, manager: KeyValueManager, label: str) -> None:
        self._manager = manager
        self.label = label

    def get(self, key: str) -> bytes | None:
        row = self._manager.run(
            lambda c: c.execute(
                "SELECT value FROM spin_key_value WHERE store=? AND key=?", (self.label, key)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes) -> None:
        self._manager.run(lambda c: c.execute(_UPSERT, (self.label, key, bytes(value))), write=True)

    def delete(self, key: str) -> None:
        self._manager.run(
            lambda c: c.execute("DELETE FROM spin_key_value WHERE store=? AND key=?", (self.label, key)),
            write=True,
        )

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def get_keys(self) -> list[str]:
        rows = self._manager.run(
            lambda c: c.execute(
                "SELECT key FROM spin_key_value WHERE store=? ORDER BY key", (self.label,)
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    def get_many(self, keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """wasi:keyvalue batch.get-many: only the keys that exist, as Spin's SQLite store."""
        if not keys:
            return []

        def op(c: sqlite3.Connection) -> list[tuple[str, bytes | None]]:
            found: list[tuple[str, bytes | None]] = []
            for key in dict.fromkeys(keys):
                row = c.execute(
                    "SELECT value FROM spin_key_value WHERE store=? AND key=?", (self.label, key)
                ).fetchone()
                if row is not None:
                    found.append((key, bytes(row[0])))
            return found

        return self._manager.run(op)

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._manager.run(
            lambda c: c.executemany(_UPSERT, [(self.label, k, bytes(v)) for k, v in items]), write=True
        )

    def delete_many(self, keys: Sequence[str]) -> None:
        self._manager.run(
            lambda c: c.executemany(
                "DELETE FROM spin_key_value WHERE store=? AND key=?", [(self.label, k) for k in keys]
            ),
            write=True,
        )

    def increment(self, key: str, delta: int) -> int:
        """wasi:keyvalue atomics.increment: value is an i64 little-endian; missing counts as 0."""

        def op(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT value FROM spin_key_value WHERE store=? AND key=?", (self.label, key)
            ).fetchone()
            current = 0
            if row is not None:
                raw = bytes(row[0])
                if len(raw) != 8:
                    raise KvError(KvErrorKind.OTHER, f"value of {key!r} is not an 8-byte integer")
                current = int.from_bytes(raw, "little", signed=True)
            new = current + delta
            if not -(2**63) <= new < 2**63:
                raise KvError(KvErrorKind.OTHER, "increment overflows i64")
            c.execute(_UPSERT, (self.label, key, new.to_bytes(8, "little", signed=True)))
            return new

        return self._manager.run(op, write=True)

    def compare_and_swap(self, key: str, expected: bytes | None, value: bytes) -> bool:
        """Write `value` only if the key still holds `expected` (None: any/absent, as Spin's insert).

        Spin's CAS with no observed value upserts unconditionally; we keep that behaviour.
        """

        def op(c: sqlite3.Connection) -> bool:
            if expected is None:
                c.execute(_UPSERT, (self.label, key, bytes(value)))
                return True
            cur = c.execute(
                "UPDATE spin_key_value SET value=? WHERE store=? AND key=? AND value=?",
                (bytes(value), self.label, key, bytes(expected)),
            )
            return cur.rowcount == 1

        return self._manager.run(op, write=True)
