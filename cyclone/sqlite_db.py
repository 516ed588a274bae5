"""The node's embedded database: one SQLite file (WAL journal) shared by the tag index and events.

Each component creates its own tables (``ensure_schema``) in the one file a
data directory holds (``<directory>/cyclone.db``). `open_database` hands
every caller in the process the same `Database` for a path, so the tag
index and the events never open the file twice. sqlite3 connections are
not shared between threads: each thread gets its own, and `write` runs a
transaction under one process-wide lock per file (SQLite allows one writer
at a time anyway; the lock saves the busy-retry loop).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Iterator

DB_FILE_NAME = "cyclone.db"
BUSY_TIMEOUT_SECS = 30.0

_open: dict[str, "Database"] = {}
_open_lock = threading.Lock()


class Database:
    """One SQLite file: per-thread connections, serialized write transactions."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        conn = self.connection()
        conn.execute("PRAGMA journal_mode=WAL")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (made on first use)."""
        if self._closed:
            raise sqlite3.ProgrammingError(f"database {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECS, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        conn = self.connection()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        """All rows of one query, on this thread's connection."""
        return self.connection().execute(sql, params).fetchall()

    def ensure_schema(self, script: str) -> None:
        """Run a component's ``CREATE ... IF NOT EXISTS`` script (idempotent)."""
        with self._write_lock:
            self.connection().executescript(script)

    def close(self) -> None:
        with _open_lock:
            if _open.get(self.path) is self:
                del _open[self.path]
        self._closed = True
        with self._connections_lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            conn.close()


def open_database(directory: str) -> Database:
    """The process's `Database` for the file in ``directory`` (opened on first use)."""
    path = os.path.abspath(os.path.join(directory, DB_FILE_NAME))
    with _open_lock:
        db = _open.get(path)
        if db is None:
            db = _open[path] = Database(path)
        return db
