from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.store import FleetStore, open_store
from tests.gateway.postgres_server import PostgresServer

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(backend, location) for a fresh, empty store of each backend."""
    if request.param == "sqlite":
        return ("sqlite", str(tmp_path / "fleet.db"))
    server: PostgresServer = request.getfixturevalue("postgres")
    return ("postgresql", server.reset_database(f"fleet_{next(_db_counter)}"))


@pytest.fixture
async def store(store_spec: tuple[str, str]) -> AsyncIterator[FleetStore]:
    backend, where = store_spec
    fleet = open_store(backend, path=where) if backend == "sqlite" else open_store(backend, dsn=where)
    await fleet.open()
    try:
        yield fleet
    finally:
        await fleet.close()
