from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store import FleetStore, open_store
from tests.gateway.gateway_process import GatewayProcess
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


@pytest.fixture
def gateway_factory(store_spec: tuple[str, str], tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start gateway processes on the parametrised backend; all stopped at teardown."""
    started: list[GatewayProcess] = []
    backend, where = store_spec

    def make(**kwargs: Any) -> GatewayProcess:
        process = GatewayProcess(tmp_path / f"gw{len(started)}", backend=backend,
                                 dsn=where if backend == "postgresql" else "", **kwargs)
        if backend == "sqlite":
            process.db_path = Path(where)
        started.append(process)
        process.start()
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture
def gateway(gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateway_factory()
