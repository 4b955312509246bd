"""SQLite databases backend: labels, values, errors, durability (real SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.capabilities.sqlite.store import QueryResult, SqliteError, SqliteErrorKind, SqliteManager


def test_labels(tmp_path: Path) -> None:
    db = SqliteManager(tmp_path, ["analytics"])
    db.open("default", ["default"])
    with pytest.raises(SqliteError) as denied:
        db.open("analytics", ["default"])
    assert denied.value.kind is SqliteErrorKind.ACCESS_DENIED
    with pytest.raises(SqliteError) as missing:
        db.open("nope", ["nope"])
    assert missing.value.kind is SqliteErrorKind.NO_SUCH_DATABASE


def test_execute_values_and_metadata(tmp_path: Path) -> None:
    conn = SqliteManager(tmp_path, []).open("default", ["default"])
    created = conn.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)", [])
    assert created == QueryResult(columns=[], rows=[])
    conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [-(2**63), 1.5, "héllo", b"\x00\x01", None])
    assert conn.last_insert_rowid == 1
    assert conn.changes == 1
    conn.execute("INSERT INTO t (i) VALUES (?), (?)", [2, 3])
    assert conn.changes == 2
    result = conn.execute("SELECT i, r, s, b, n FROM t WHERE i < ? ORDER BY i", [3])
    assert result.columns == ["i", "r", "s", "b", "n"]
    assert result.rows == [[-(2**63), 1.5, "héllo", b"\x00\x01", None], [2, None, None, None, None]]


def test_errors_are_io(tmp_path: Path) -> None:
    conn = SqliteManager(tmp_path, []).open("default", ["default"])
    for statement, params in [("SELEC 1", []), ("SELECT ?", []), ("SELECT 1; SELECT 2", [])]:
        with pytest.raises(SqliteError) as err:
            conn.execute(statement, params)
        assert err.value.kind is SqliteErrorKind.IO
        assert err.value.message


def test_guest_transactions_and_durability(tmp_path: Path) -> None:
    manager = SqliteManager(tmp_path, ["other"])
    conn = manager.open("default", ["default"])
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)", [])
    conn.execute("BEGIN", [])
    conn.execute("INSERT INTO kv VALUES ('a', '1')", [])
    conn.execute("ROLLBACK", [])
    conn.execute("INSERT INTO kv VALUES ('b', '2')", [])
    manager.close()
    assert (tmp_path / "sqlite_db.db").is_file()
    again = SqliteManager(tmp_path, []).open("default", ["default"])
    assert again.execute("SELECT k, v FROM kv", []).rows == [["b", "2"]]
    other = SqliteManager(tmp_path, ["other"]).open("other", ["other"])
    other.execute("CREATE TABLE x (y)", [])
    assert (tmp_path / "sqlite_db.other.db").is_file()


def test_release_rolls_back_a_transaction_left_open(tmp_path: Path) -> None:
    manager = SqliteManager(tmp_path, [])
    careless = manager.open("default", ["default"])
    careless.execute("CREATE TABLE t (x)", [])
    careless.execute("BEGIN", [])
    careless.execute("INSERT INTO t VALUES (1)", [])
    careless.release()  # the request ended (or trapped) inside its transaction
    other = manager.open("default", ["default"])
    assert other.execute("SELECT COUNT(*) FROM t", []).rows == [[0]]
    other.execute("INSERT INTO t VALUES (2)", [])
    other.release()  # autocommit statements are not touched
    assert other.execute("SELECT x FROM t", []).rows == [[2]]
