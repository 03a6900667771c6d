"""PostgreSQL backend (several gateway replicas): psycopg 3 async with a connection pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from gateway.store.base import FleetStore, Row, Tx

#: Advisory lock key serialising schema migrations between replicas.
_MIGRATION_LOCK_KEY = 0x63656E74


def _pg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class _PostgresTx(Tx):
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._conn.execute(_pg(sql), tuple(params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._conn.cursor() as cur:
            await cur.executemany(_pg(sql), [tuple(r) for r in rows])

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = await self._conn.execute(_pg(sql), tuple(params))
        return [tuple(r) for r in await cur.fetchall()]


class PostgresFleetStore(FleetStore):
    name = "postgresql"
    serial_pk = "BIGSERIAL PRIMARY KEY"
    row_lock = " FOR UPDATE"
    retryable_errors = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self.dsn = dsn
        self._pool: AsyncConnectionPool | None = None
        self._pool_size = pool_size

    async def open(self) -> None:
        self._pool = AsyncConnectionPool(self.dsn, min_size=1, max_size=self._pool_size, open=False,
                                         kwargs={"autocommit": True})
        await self._pool.open(wait=True, timeout=30)
        await self.migrate()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        assert self._pool is not None, "store not open"
        async with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    async def _migration_lock(self, tx: Tx) -> None:
        await tx.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))
