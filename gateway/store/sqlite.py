"""SQLite backend (the default): one connection in WAL mode, owned by one thread.

Each public store call runs whole on that thread's own event loop, so a batch of
reports costs one hand-off between threads, not one per statement; the gateway's
event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from gateway.store.base import FleetStore, Row, Tx

T = TypeVar("T")


class _SqliteTx(Tx):
    """Statements run synchronously: we are already on the store's thread."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(sql, tuple(params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, [tuple(r) for r in rows])

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self._db.execute(sql, tuple(params)).fetchall()]


class SqliteFleetStore(FleetStore):
    name = "sqlite"
    serial_pk = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def _run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            return await work()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work(), loop))

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fleet-sqlite", daemon=True)
        self._thread.start()
        await asyncio.get_running_loop().run_in_executor(None, ready.wait)
        self._loop = loop

        async def connect() -> None:
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            self._db = db

        await self._run(connect)
        await self.migrate()

    async def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(disconnect)
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        loop.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        db = self._db
        assert db is not None, "store not open"
        # Bodies never suspend (statements are synchronous), so one transaction runs to its
        # end before the thread's loop starts another: no lock needed.
        db.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTx(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def _migration_lock(self, tx: Tx) -> None:
        return None  # BEGIN IMMEDIATE already excludes other writers
