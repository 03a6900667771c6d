"""Store-and-forward outbox: device reports waiting for the gateway's ack.

One SQLite database (WAL) under the agent's state directory. Every entry gets a
per-agent sequence number (strictly increasing, persisted across restarts) and
is deleted once the gateway acks a seq at or above it. The outbox is bounded by
total payload bytes and by entry age. When a bound is hit it first coalesces
(drops entries superseded by a later entry for the same device, or by a later
snapshot), then drops the oldest entries; every dropped entry is counted by
reason and the outbox asks for a fresh snapshot so the gateway still converges
to the current state.

The calls block on disk; async callers run them through ``run_blocking``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError

#: Entry kinds; a snapshot supersedes every older entry.
KIND_STATUS = "status"
KIND_REMOVED = "removed"
KIND_SNAPSHOT = "snapshot"
_KINDS = frozenset({KIND_STATUS, KIND_REMOVED, KIND_SNAPSHOT})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_device ON entries (device_id, seq);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    kind: str
    device_id: str  # "" for snapshots
    created: float
    payload: bytes

    def __repr__(self) -> str:
        return f"OutboxEntry(seq={self.seq}, kind={self.kind}, <{len(self.payload)} bytes>)"


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_bytes: int = 8 * 1024 * 1024
    max_age_seconds: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1024:
            raise ConfigError("outbox: max_bytes must be >= 1024")
        if self.max_age_seconds <= 0:
            raise ConfigError("outbox: max_age_seconds must be > 0")


DropListener = Callable[[str, int], None]  # (reason, count)


class Outbox:
    """The persistent queue. Thread-safe; one instance per database file."""

    def __init__(self, path: Path, limits: OutboxLimits | None = None, *,
                 clock: Callable[[], float] = time.time, on_drop: DropListener | None = None) -> None:
        self.path = path
        self.limits = limits or OutboxLimits()
        self._clock = clock
        self._drop_listeners: list[DropListener] = [on_drop] if on_drop is not None else []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        os.chmod(path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._tx():
            if self._meta("epoch") == 0:
                # 63 bits so it fits a signed SQLite integer.
                self._set_meta("epoch", secrets.randbits(63) or 1)
        row = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM entries").fetchone()
        self._bytes = int(row[0])
        self._count = int(row[1])

    # -- metadata ----------------------------------------------------------------------------

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    @property
    def epoch(self) -> int:
        with self._lock:
            return self._meta("epoch")

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._meta("last_seq")

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count

    def dropped(self) -> dict[str, int]:
        """Entries dropped since the outbox was created, by reason (persisted)."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'dropped:%'").fetchall()
        return {str(key).split(":", 1)[1]: int(value) for key, value in rows}

    def add_drop_listener(self, listener: DropListener) -> None:
        """Call ``listener(reason, count)`` whenever entries are dropped (e.g. to feed a metric)."""
        self._drop_listeners.append(listener)

    def snapshot_wanted(self) -> bool:
        """True after a drop lost state the gateway has not seen: the reporter should append a
        snapshot (which clears the flag)."""
        with self._lock:
            return self._meta("snapshot_wanted") == 1

    # -- queue -------------------------------------------------------------------------------

    def append(self, kind: str, device_id: str, payload: bytes) -> int:
        """Store one entry and return its seq. Enforces the bounds afterwards."""
        if kind not in _KINDS:
            raise ConfigError(f"outbox: unknown entry kind {kind!r}")
        if len(payload) > self.limits.max_bytes:
            raise ConfigError("outbox: entry larger than the whole outbox bound")
        now = self._clock()
        with self._lock, self._tx():
            seq = self._meta("last_seq") + 1
            self._set_meta("last_seq", seq)
            self._db.execute("INSERT INTO entries (seq, kind, device_id, created, size, payload) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (seq, kind, device_id, now, len(payload), payload))
            self._bytes += len(payload)
            self._count += 1
            if kind == KIND_SNAPSHOT:
                self._set_meta("snapshot_wanted", 0)
            self._enforce_bounds(now)
        return seq

    def pending(self, max_entries: int = 500, max_bytes: int = 512 * 1024) -> list[OutboxEntry]:
        """The oldest unacked entries in seq order, at most ``max_entries`` / about ``max_bytes``
        (always at least one entry when the outbox is not empty)."""
        with self._lock:
            self._expire(self._clock())
            rows = self._db.execute("SELECT seq, kind, device_id, created, payload FROM entries "
                                    "ORDER BY seq LIMIT ?", (max_entries,)).fetchall()
        batch: list[OutboxEntry] = []
        total = 0
        for seq, kind, device_id, created, payload in rows:
            if batch and total + len(payload) > max_bytes:
                break
            batch.append(OutboxEntry(int(seq), str(kind), str(device_id), float(created), bytes(payload)))
            total += len(payload)
        return batch

    def ack(self, seq: int) -> int:
        """Delete every entry with seq <= ``seq``; returns how many went."""
        with self._lock, self._tx():
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE seq <= ?",
                                   (seq,)).fetchone()
            self._db.execute("DELETE FROM entries WHERE seq <= ?", (seq,))
            self._count -= int(row[0])
            self._bytes -= int(row[1])
            return int(row[0])

    def drop(self, seqs: list[int], reason: str) -> None:
        """Drop specific entries (e.g. ones the gateway rejected as malformed)."""
        with self._lock, self._tx():
            self._delete(seqs, reason)
            self._set_meta("snapshot_wanted", 1)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- bounds ------------------------------------------------------------------------------

    def _delete(self, seqs: list[int], reason: str) -> None:
        if not seqs:
            return
        for start in range(0, len(seqs), 500):
            chunk = seqs[start:start + 500]
            marks = ",".join("?" * len(chunk))
            row = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries "  # noqa: S608
                                   f"WHERE seq IN ({marks})", chunk).fetchone()
            self._db.execute(f"DELETE FROM entries WHERE seq IN ({marks})", chunk)  # noqa: S608
            self._count -= int(row[0])
            self._bytes -= int(row[1])
            self._set_meta(f"dropped:{reason}", self._meta(f"dropped:{reason}") + int(row[0]))
        for listener in self._drop_listeners:
            listener(reason, len(seqs))

    def _expire(self, now: float) -> None:
        old = [int(r[0]) for r in self._db.execute(
            "SELECT seq FROM entries WHERE created < ?", (now - self.limits.max_age_seconds,))]
        if old:
            with self._tx():
                self._delete(old, "age")
                self._set_meta("snapshot_wanted", 1)

    def _enforce_bounds(self, now: float) -> None:
        self._expire(now)
        if self._bytes <= self.limits.max_bytes:
            return
        # 1. Coalesce: everything older than the newest snapshot, and every device entry
        #    with a newer entry for the same device, is superseded by later state.
        newest_snapshot = self._db.execute(
            "SELECT MAX(seq) FROM entries WHERE kind = ?", (KIND_SNAPSHOT,)).fetchone()[0]
        superseded = [int(r[0]) for r in self._db.execute(
            "SELECT e.seq FROM entries e WHERE e.seq < COALESCE(?, 0) OR (e.kind != ? AND EXISTS "
            "(SELECT 1 FROM entries n WHERE n.device_id = e.device_id AND n.kind != ? AND n.seq > e.seq)) "
            "ORDER BY e.seq", (newest_snapshot, KIND_SNAPSHOT, KIND_SNAPSHOT))]
        victims: list[int] = []
        excess = self._bytes - self.limits.max_bytes
        if superseded:
            sizes = dict(self._db.execute(
                f"SELECT seq, size FROM entries WHERE seq IN ({','.join('?' * len(superseded))})",  # noqa: S608
                superseded).fetchall()) if len(superseded) < 900 else None
            for seq in superseded:
                victims.append(seq)
                excess -= int(sizes[seq]) if sizes is not None else self._size_of(seq)
                if excess <= 0:
                    break
            self._delete(victims, "coalesced")
        if self._bytes <= self.limits.max_bytes:
            return
        # 2. Still over: drop the oldest entries; the gateway loses those states, so ask for a
        #    snapshot to converge again.
        oldest: list[int] = []
        excess = self._bytes - self.limits.max_bytes
        for seq, size in self._db.execute("SELECT seq, size FROM entries ORDER BY seq"):
            oldest.append(int(seq))
            excess -= int(size)
            if excess <= 0:
                break
        self._delete(oldest, "bytes")
        self._set_meta("snapshot_wanted", 1)

    def _size_of(self, seq: int) -> int:
        row = self._db.execute("SELECT size FROM entries WHERE seq = ?", (seq,)).fetchone()
        return int(row[0]) if row else 0


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, nesting-safe (inner uses are no-ops)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._owner = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._owner = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._owner:
            return
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
