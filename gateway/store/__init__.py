"""Fleet storage behind one interface: SQLite (default, embedded) and PostgreSQL."""

from __future__ import annotations

from gateway.store.base import FleetStore


def open_store(backend: str, *, path: str = "", dsn: str = "", pool_size: int = 4) -> FleetStore:
    """Build the configured store (not yet opened); backends import lazily."""
    if backend == "sqlite":
        from gateway.store.sqlite import SqliteFleetStore
        return SqliteFleetStore(path)
    if backend == "postgresql":
        from gateway.store.postgres import PostgresFleetStore
        return PostgresFleetStore(dsn, pool_size=pool_size)
    from agent.errors import ConfigError
    raise ConfigError(f"unknown storage backend {backend!r} (sqlite, postgresql)")


__all__ = ["FleetStore", "open_store"]
