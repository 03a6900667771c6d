"""The trust bundle's storage: entries and a change counter, on any :class:`FleetStore`.

Same schema on SQLite and PostgreSQL (migration 3); DER is kept as base64 text so both
backends use one column type. Every import or removal bumps the counter in the same
transaction, so the served version changes with every change.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import NotFoundError
from gateway.store.base import FleetStore, Tx, storage_unit
from gateway.trust import TrustEntry, bundle_version

_COLUMNS = "kind, subject, country, serial, not_before_ms, not_after_ms, source, der_b64"


@dataclass(frozen=True, slots=True)
class TrustBundleRows:
    version: str
    entries: tuple[TrustEntry, ...]


class TrustRegistry:
    def __init__(self, store: FleetStore) -> None:
        self._store = store

    async def bundle(self) -> TrustBundleRows:
        return await _bundle(self._store)

    async def add(self, entries: Sequence[TrustEntry], now_ms: int) -> int:
        """Add ``entries`` (already checked); returns how many were new."""
        return await _add(self._store, list(entries), now_ms)

    async def remove(self, selector: str, now_ms: int) -> list[TrustEntry]:
        """Remove the entries whose fingerprint starts with ``selector`` (at least 8 hex digits)
        or whose serial is ``selector``; returns them."""
        return await _remove(self._store, selector.lower(), now_ms)


def _entry(row: tuple[object, ...]) -> TrustEntry:
    return TrustEntry(kind=str(row[0]), subject=str(row[1]), country=str(row[2]), serial=str(row[3]),
                      not_before_ms=int(str(row[4])), not_after_ms=int(str(row[5])), source=str(row[6]),
                      der=base64.b64decode(str(row[7])))


async def _entries(tx: Tx) -> list[TrustEntry]:
    rows = await tx.fetchall(f"SELECT {_COLUMNS} FROM trust_entries ORDER BY kind, subject, fingerprint")  # noqa: S608 - constant column list
    return [_entry(r) for r in rows]


async def _counter(tx: Tx) -> int:
    row = await tx.fetchone("SELECT changes FROM trust_changes WHERE id = 1")
    return int(row[0]) if row else 0


async def _bump(tx: Tx, now_ms: int) -> None:
    await tx.execute("INSERT INTO trust_changes (id, changes, changed_ms) VALUES (1, 1, ?) "
                     "ON CONFLICT (id) DO UPDATE SET changes = trust_changes.changes + 1, "
                     "changed_ms = excluded.changed_ms", (now_ms,))


@storage_unit
async def _bundle(store: FleetStore) -> TrustBundleRows:
    async with store.transaction() as tx:
        entries = await _entries(tx)
        counter = await _counter(tx)
    return TrustBundleRows(bundle_version(counter, entries), tuple(entries))


@storage_unit
async def _add(store: FleetStore, entries: list[TrustEntry], now_ms: int) -> int:
    async with store.transaction() as tx:
        known = {str(r[0]) for r in await tx.fetchall("SELECT fingerprint FROM trust_entries")}
        fresh = {e.fingerprint: e for e in entries if e.fingerprint not in known}
        if fresh:
            await tx.executemany(
                f"INSERT INTO trust_entries (fingerprint, {_COLUMNS}, added_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant column list
                [(e.fingerprint, e.kind, e.subject, e.country, e.serial, e.not_before_ms, e.not_after_ms,
                  e.source, base64.b64encode(e.der).decode(), now_ms) for e in fresh.values()])
            await _bump(tx, now_ms)
    return len(fresh)


@storage_unit
async def _remove(store: FleetStore, selector: str, now_ms: int) -> list[TrustEntry]:
    async with store.transaction() as tx:
        entries = await _entries(tx)
        chosen = [e for e in entries
                  if (len(selector) >= 8 and e.fingerprint.startswith(selector)) or e.serial == selector]
        if not chosen:
            raise NotFoundError(f"no trust bundle entry with fingerprint or serial {selector!r}")
        await tx.executemany("DELETE FROM trust_entries WHERE fingerprint = ?", [(e.fingerprint,) for e in chosen])
        await _bump(tx, now_ms)
    return chosen
