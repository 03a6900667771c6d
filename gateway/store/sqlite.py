"""SQLite backend (the default): one connection in WAL mode driven from one thread."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.store.base import FleetStore, Row, Tx


class _SqliteTx(Tx):
    def __init__(self, store: SqliteFleetStore) -> None:
        self._store = store

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._store._call(lambda db: db.execute(sql, tuple(params)))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._store._call(lambda db: db.executemany(sql, [tuple(r) for r in rows]))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = await self._store._call(lambda db: db.execute(sql, tuple(params)).fetchall())
        return rows


class SqliteFleetStore(FleetStore):
    name = "sqlite"
    serial_pk = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-sqlite")
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def _call(self, fn: Any) -> Any:
        db = self._db
        assert db is not None, "store not open"
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, db)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        await self.migrate()

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._lock:
            await self._call(lambda db: db.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteTx(self)
            except BaseException:
                await self._call(lambda db: db.execute("ROLLBACK"))
                raise
            await self._call(lambda db: db.execute("COMMIT"))

    async def _migration_lock(self, tx: Tx) -> None:
        return None  # BEGIN IMMEDIATE already excludes other writers
