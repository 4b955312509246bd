"""Key-value backend: labels, durability, Spin's file/schema, atomics, concurrency (real SQLite)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from runtime.capabilities.key_value.store import KeyValueManager, KvError, KvErrorKind


def test_default_store_always_exists_and_labels_are_checked(tmp_path: Path) -> None:
    kv = KeyValueManager(tmp_path, labels=["cache"])
    assert kv.labels == {"default", "cache"}
    kv.open("default", allowed=["default"]).set("k", b"v")
    with pytest.raises(KvError) as denied:
        kv.open("cache", allowed=["default"])  # defined, but this component did not declare it
    assert denied.value.kind is KvErrorKind.ACCESS_DENIED
    with pytest.raises(KvError) as denied_default:
        kv.open("default", allowed=[])
    assert denied_default.value.kind is KvErrorKind.ACCESS_DENIED
    with pytest.raises(KvError) as missing:
        kv.open("nowhere", allowed=["nowhere"])
    assert missing.value.kind is KvErrorKind.NO_SUCH_STORE


def test_operations_and_store_isolation(tmp_path: Path) -> None:
    kv = KeyValueManager(tmp_path, labels=["other"])
    store = kv.open("default", ["default", "other"])
    other = kv.open("other", ["default", "other"])
    assert store.get("missing") is None
    assert not store.exists("a")
    store.set("a", b"1")
    store.set("b", b"\x00\xff")
    store.set("a", b"2")
    other.set("a", b"other")
    assert store.get("a") == b"2"
    assert store.get("b") == b"\x00\xff"
    assert other.get("a") == b"other"
    assert store.get_keys() == ["a", "b"]
    assert store.exists("a")
    store.delete("a")
    store.delete("never-there")
    assert store.get_keys() == ["b"]
    assert other.get_keys() == ["a"]


def test_batch_and_atomics(tmp_path: Path) -> None:
    store = KeyValueManager(tmp_path, []).open("default", ["default"])
    store.set_many([("x", b"1"), ("y", b"2")])
    assert store.get_many(["x", "nope", "y"]) == [("x", b"1"), ("y", b"2")]
    store.delete_many(["x", "nope"])
    assert store.get_keys() == ["y"]
    assert store.increment("n", 5) == 5
    assert store.increment("n", -7) == -2
    assert store.get("n") == (-2).to_bytes(8, "little", signed=True)
    with pytest.raises(KvError):
        store.increment("y", 1)  # not an 8-byte integer
    assert store.compare_and_swap("y", b"2", b"3")
    assert not store.compare_and_swap("y", b"2", b"4")
    assert store.get("y") == b"3"


def test_durable_in_spins_file_and_schema(tmp_path: Path) -> None:
    kv = KeyValueManager(tmp_path, [])
    kv.open("default", ["default"]).set("greeting", b"hello")
    kv.close()
    # Spin's own layout: <state_dir>/sqlite_key_value.db, table spin_key_value(store, key, value).
    with sqlite3.connect(tmp_path / "sqlite_key_value.db") as conn:
        assert conn.execute("SELECT store, key, value FROM spin_key_value").fetchall() == [
            ("default", "greeting", b"hello")
        ]
    reopened = KeyValueManager(tmp_path, [])
    assert reopened.open("default", ["default"]).get("greeting") == b"hello"


def test_no_state_dir_is_in_memory(tmp_path: Path) -> None:
    kv = KeyValueManager(None, [])
    kv.open("default", ["default"]).set("k", b"v")
    assert kv.open("default", ["default"]).get("k") == b"v"
    assert kv.path is None
    assert KeyValueManager(None, []).open("default", ["default"]).get("k") is None


def test_concurrent_increments_from_two_managers_are_atomic(tmp_path: Path) -> None:
    # Two managers on one file = the old and new versions of an app during a hot swap.
    managers = [KeyValueManager(tmp_path, []), KeyValueManager(tmp_path, [])]
    per_thread = 200

    def work(i: int) -> None:
        store = managers[i % 2].open("default", ["default"])
        for _ in range(per_thread):
            store.increment("counter", 1)
            store.set(f"t{i}", b"x")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = managers[0].open("default", ["default"]).get("counter")
    assert final is not None
    assert int.from_bytes(final, "little", signed=True) == 6 * per_thread


def test_opening_waits_for_a_writer_instead_of_failing_on_the_journal_switch(tmp_path: Path) -> None:
    # A store file not yet in WAL mode (new, or written by a rollback-journal SQLite) while another
    # connection holds a write lock: SQLite refuses the journal switch at once, without its busy
    # handler. Seen as a flaky "database is locked" when an app's old and new versions both opened
    # a new store during a swap; the open must wait for the lock like any other write.
    writer = sqlite3.connect(tmp_path / "sqlite_key_value.db", isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
                   "PRIMARY KEY (store, key))")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO spin_key_value VALUES ('default', 'k', x'01')")
    release = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    release.start()
    try:
        store = KeyValueManager(tmp_path, []).open("default", ["default"])
        assert store.get("k") == b"\x01"  # opened once the writer committed, and sees its write
    finally:
        release.join()
        writer.close()
