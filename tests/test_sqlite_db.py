"""cyclone.sqlite_db: one file per directory, WAL journal, per-thread connections, transactions."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from cyclone.sqlite_db import DB_FILE_NAME, open_database


def test_one_database_per_directory_in_wal_mode(tmp_path):
    db = open_database(str(tmp_path))
    try:
        assert open_database(str(tmp_path / ".")) is db
        assert db.path == str(tmp_path / DB_FILE_NAME)
        assert db.read("PRAGMA journal_mode") == [("wal",)]
    finally:
        db.close()
    assert (tmp_path / DB_FILE_NAME).exists()


def test_schema_write_read_and_rollback(tmp_path):
    db = open_database(str(tmp_path))
    try:
        db.ensure_schema("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER);")
        db.ensure_schema("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER);")
        with db.write() as conn:
            conn.execute("INSERT INTO t VALUES ('a', 1)")
        with pytest.raises(sqlite3.IntegrityError):
            with db.write() as conn:
                conn.execute("INSERT INTO t VALUES ('b', 2)")
                conn.execute("INSERT INTO t VALUES ('a', 3)")
        assert db.read("SELECT k, v FROM t ORDER BY k") == [("a", 1)]
    finally:
        db.close()


def test_threads_get_their_own_connections_and_see_commits(tmp_path):
    db = open_database(str(tmp_path))
    try:
        db.ensure_schema("CREATE TABLE IF NOT EXISTS t (n INTEGER);")
        seen: list[int] = []

        def writer(i: int) -> None:
            for j in range(50):
                with db.write() as conn:
                    conn.execute("INSERT INTO t VALUES (?)", (i * 1000 + j,))
            seen.append(id(db.connection()))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(set(seen)) == 4
        assert db.read("SELECT count(*) FROM t") == [(200,)]
    finally:
        db.close()


def test_reopen_after_close_sees_the_data(tmp_path):
    db = open_database(str(tmp_path))
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (n INTEGER);")
    with db.write() as conn:
        conn.execute("INSERT INTO t VALUES (7)")
    db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        db.connection()
    again = open_database(str(tmp_path))
    try:
        assert again is not db
        assert again.read("SELECT n FROM t") == [(7,)]
    finally:
        again.close()
