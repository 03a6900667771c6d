"""The storage interface and the SQL both backends share.

Backends differ only in how a transaction runs (a dedicated thread for SQLite, an
async pool for PostgreSQL), the placeholder style and a few column types; the
schema, migrations and the report-apply logic live here once.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Concatenate, ParamSpec, TypeVar

from gateway.model import (
    AgentHealthInfo,
    AgentRef,
    AgentReport,
    AgentRow,
    Beat,
    ConditionInfo,
    DeviceReport,
    DeviceRow,
    ProblemSeverity,
    ReportResult,
    SupplyInfo,
    Transition,
)

Row = tuple[Any, ...]

#: (version, statements). Statements use {serial_pk} for an auto-increment key.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE agents (
            agent_id TEXT PRIMARY KEY,
            province TEXT NOT NULL,
            centre TEXT NOT NULL,
            host TEXT NOT NULL DEFAULT '',
            version TEXT NOT NULL DEFAULT '',
            uptime_seconds BIGINT NOT NULL DEFAULT 0,
            config_hash TEXT NOT NULL DEFAULT '',
            certificate_not_after BIGINT NOT NULL DEFAULT 0,
            interval_s INTEGER NOT NULL DEFAULT 60,
            epoch BIGINT NOT NULL DEFAULT 0,
            acked_seq BIGINT NOT NULL DEFAULT 0,
            last_seen_ms BIGINT NOT NULL,
            first_seen_ms BIGINT NOT NULL)""",
        "CREATE INDEX agents_centre ON agents (centre)",
        """CREATE TABLE devices (
            agent_id TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
            device_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            backend TEXT NOT NULL,
            name TEXT NOT NULL,
            vendor TEXT NOT NULL,
            model TEXT NOT NULL,
            state TEXT NOT NULL,
            last_error TEXT NOT NULL,
            conditions TEXT NOT NULL,
            supplies TEXT NOT NULL,
            counters TEXT NOT NULL,
            state_since_ms BIGINT NOT NULL,
            problem_since_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL,
            PRIMARY KEY (agent_id, device_id))""",
        """CREATE TABLE transitions (
            id {serial_pk},
            agent_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            state TEXT NOT NULL,
            observed_ms BIGINT NOT NULL,
            received_ms BIGINT NOT NULL)""",
        "CREATE INDEX transitions_agent ON transitions (agent_id, device_id, id)",
    )),
    (2, (  # provisioning (issue 8): gateway/store/identity.py
        """CREATE TABLE centres (
            code TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            province TEXT NOT NULL,
            created_ms BIGINT NOT NULL)""",
        """CREATE TABLE enrol_tokens (
            token_hash TEXT PRIMARY KEY,
            token_id TEXT NOT NULL UNIQUE,
            centre TEXT NOT NULL REFERENCES centres (code),
            uses_left INTEGER NOT NULL,
            expires_ms BIGINT NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0,
            created_ms BIGINT NOT NULL)""",
        """CREATE TABLE enrolments (
            agent_id TEXT PRIMARY KEY,
            centre TEXT NOT NULL REFERENCES centres (code),
            province TEXT NOT NULL,
            machine_id TEXT NOT NULL,
            hostname TEXT NOT NULL,
            serial TEXT NOT NULL,
            status TEXT NOT NULL,
            flags TEXT NOT NULL DEFAULT '',
            enrolled_ms BIGINT NOT NULL,
            renewed_ms BIGINT NOT NULL DEFAULT 0,
            doctor TEXT NOT NULL DEFAULT '',
            doctor_ms BIGINT NOT NULL DEFAULT 0)""",
        "CREATE INDEX enrolments_machine ON enrolments (machine_id)",
        """CREATE TABLE certificates (
            serial TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL REFERENCES enrolments (agent_id),
            spki TEXT NOT NULL,
            not_after_ms BIGINT NOT NULL,
            issued_ms BIGINT NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX certificates_spki ON certificates (spki)",
        """CREATE TABLE preregistered (
            serial TEXT PRIMARY KEY,
            centre TEXT NOT NULL REFERENCES centres (code),
            created_ms BIGINT NOT NULL)""",
    )),
    (3, (  # trust bundle for passive authentication (issue 15): gateway/store/trust.py
        """CREATE TABLE trust_entries (
            fingerprint TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            country TEXT NOT NULL,
            serial TEXT NOT NULL,
            not_before_ms BIGINT NOT NULL,
            not_after_ms BIGINT NOT NULL,
            source TEXT NOT NULL,
            der_b64 TEXT NOT NULL,
            added_ms BIGINT NOT NULL)""",
        """CREATE TABLE trust_changes (
            id INTEGER PRIMARY KEY,
            changes BIGINT NOT NULL,
            changed_ms BIGINT NOT NULL)""",
        "ALTER TABLE agents ADD COLUMN trust_version TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE agents ADD COLUMN trust_age_s BIGINT NOT NULL DEFAULT 0",
    )),
)

_AGENT_COLUMNS = ("agent_id, province, centre, host, version, uptime_seconds, config_hash, "
                  "certificate_not_after, interval_s, epoch, acked_seq, last_seen_ms, first_seen_ms, "
                  "trust_version, trust_age_s")
_DEVICE_COLUMNS = ("agent_id, device_id, kind, backend, name, vendor, model, state, last_error, "
                   "conditions, supplies, counters, state_since_ms, problem_since_ms, updated_ms")


P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="FleetStore")


def storage_unit(method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
                 ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Mark a public store method as one unit of work, run wherever the backend runs its
    work (:meth:`FleetStore._run`): inline for PostgreSQL, on the SQLite thread for SQLite."""

    async def unit(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(lambda: method(self, *args, **kwargs))

    unit.__name__, unit.__qualname__, unit.__doc__ = method.__name__, method.__qualname__, method.__doc__
    return unit


class Tx(abc.ABC):
    """One open transaction. SQL uses ``?`` placeholders; backends translate."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


class FleetStore(abc.ABC):
    """Everything the gateway persists. Implementations must be safe for concurrent callers."""

    name: str = "abstract"
    #: SQL for an auto-increment primary key column.
    serial_pk: str = "INTEGER PRIMARY KEY"
    #: suffix that locks a selected row until commit ("" where writers are serialised anyway)
    row_lock: str = ""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and run pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...

    async def _run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run one unit of storage work (a public method's body)."""
        return await work()

    @abc.abstractmethod
    async def _migration_lock(self, tx: Tx) -> None:
        """Serialise migrations between gateway replicas."""

    # -- migrations --------------------------------------------------------------------------

    @storage_unit
    async def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        async with self.transaction() as tx:
            await self._migration_lock(tx)
            await tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                             "(version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)")
            done = {int(r[0]) for r in await tx.fetchall("SELECT version FROM schema_migrations")}
            import time
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    await tx.execute(statement.format(serial_pk=self.serial_pk))
                await tx.execute("INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)",
                                 (version, int(time.time() * 1000)))
            return max((v for v, _ in MIGRATIONS), default=0)

    @storage_unit
    async def schema_version(self) -> int:
        async with self.transaction() as tx:
            row = await tx.fetchone("SELECT MAX(version) FROM schema_migrations")
        return int(row[0]) if row and row[0] is not None else 0

    # -- writes ------------------------------------------------------------------------------

    #: errors after which the whole transaction is simply run again (deadlock between replicas)
    retryable_errors: tuple[type[BaseException], ...] = ()

    @storage_unit
    async def apply_reports(self, reports: Sequence[AgentReport]) -> list[ReportResult]:
        """Apply a batch of reports in one transaction, deduplicating by (agent, epoch, seq)."""
        for attempt in range(3):
            try:
                results: list[ReportResult] = []
                async with self.transaction() as tx:
                    if self.row_lock:
                        # lock every agent row of the batch in one order: concurrent writers
                        # (heartbeat flushes, other replicas) then cannot deadlock on them
                        ids = sorted({r.agent.agent_id for r in reports})
                        await tx.fetchall(f"SELECT agent_id FROM agents WHERE agent_id = ANY(?) "  # noqa: S608 - constant column lists only
                                          f"ORDER BY agent_id{self.row_lock}", (ids,))
                    for report in reports:
                        results.append(await self._apply(tx, report))
                return results
            except self.retryable_errors:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apply(self, tx: Tx, report: AgentReport) -> ReportResult:
        agent = report.agent
        now = report.received_ms
        row = await tx.fetchone(f"SELECT epoch, acked_seq FROM agents WHERE agent_id = ?{self.row_lock}",  # noqa: S608 - constant column lists only
                                (agent.agent_id,))
        if row is None:
            first = report.health or AgentHealthInfo()
            await tx.execute(f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant column lists only
                             (agent.agent_id, agent.province, agent.centre, first.host, first.version,
                              first.uptime_seconds, first.config_hash, first.certificate_not_after,
                              60, report.epoch, 0, now, now, first.trust_bundle_version,
                              first.trust_bundle_age_seconds))
            acked = 0
        else:
            acked = int(row[1]) if int(row[0]) == report.epoch else 0
        fresh = [u for u in report.updates if u.seq > acked]
        replayed = len(report.updates) - len(fresh)
        if fresh:
            devices = {r.report.device_id: r for r in await self._devices_of(tx, agent.agent_id)}
            changed: dict[str, DeviceRow] = {}
            removed: set[str] = set()
            transitions: list[Row] = []

            def put(status: DeviceReport, seq: int, observed: int) -> None:
                prior = devices.get(status.device_id)
                state_since = observed
                if prior is not None and prior.report.state == status.state:
                    state_since = prior.state_since_ms
                else:
                    transitions.append((agent.agent_id, status.device_id, seq, status.state, observed, now))
                has_problem = bool(status.problems())
                problem_since = 0
                if has_problem:
                    problem_since = prior.problem_since_ms if prior is not None and prior.problem_since_ms \
                        else observed
                new = DeviceRow(agent.agent_id, status, state_since, problem_since, now)
                devices[status.device_id] = new
                changed[status.device_id] = new
                removed.discard(status.device_id)

            def drop(device_id: str, seq: int, observed: int) -> None:
                if devices.pop(device_id, None) is not None:
                    transitions.append((agent.agent_id, device_id, seq, "removed", observed, now))
                changed.pop(device_id, None)
                removed.add(device_id)

            for update in fresh:
                if update.status is not None:
                    put(update.status, update.seq, update.observed_ms)
                elif update.snapshot is not None:
                    listed = {d.device_id for d in update.snapshot}
                    for device_id in [d for d in devices if d not in listed]:
                        drop(device_id, update.seq, update.observed_ms)
                    for status in update.snapshot:
                        put(status, update.seq, update.observed_ms)
                else:
                    drop(update.removed_id, update.seq, update.observed_ms)
                acked = update.seq
            if removed:
                await tx.executemany("DELETE FROM devices WHERE agent_id = ? AND device_id = ?",
                                     [(agent.agent_id, d) for d in sorted(removed)])
            if changed:
                await tx.executemany(
                    f"INSERT INTO devices ({_DEVICE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "  # noqa: S608 - constant column lists only
                    "ON CONFLICT (agent_id, device_id) DO UPDATE SET kind = excluded.kind, "
                    "backend = excluded.backend, name = excluded.name, vendor = excluded.vendor, "
                    "model = excluded.model, state = excluded.state, last_error = excluded.last_error, "
                    "conditions = excluded.conditions, supplies = excluded.supplies, "
                    "counters = excluded.counters, state_since_ms = excluded.state_since_ms, "
                    "problem_since_ms = excluded.problem_since_ms, updated_ms = excluded.updated_ms",
                    [_device_params(r) for r in changed.values()])
            if transitions:
                await tx.executemany("INSERT INTO transitions (agent_id, device_id, seq, state, observed_ms, "
                                     "received_ms) VALUES (?,?,?,?,?,?)", transitions)
        health = report.health
        if health is not None:
            await tx.execute("UPDATE agents SET province = ?, centre = ?, epoch = ?, acked_seq = ?, "
                             "last_seen_ms = ?, host = ?, version = ?, uptime_seconds = ?, config_hash = ?, "
                             "certificate_not_after = ?, trust_version = ?, trust_age_s = ? WHERE agent_id = ?",
                             (agent.province, agent.centre, report.epoch, acked, now, health.host,
                              health.version, health.uptime_seconds, health.config_hash,
                              health.certificate_not_after, health.trust_bundle_version,
                              health.trust_bundle_age_seconds, agent.agent_id))
        else:
            await tx.execute("UPDATE agents SET province = ?, centre = ?, epoch = ?, acked_seq = ?, "
                             "last_seen_ms = ? WHERE agent_id = ?",
                             (agent.province, agent.centre, report.epoch, acked, now, agent.agent_id))
        return ReportResult(acked_seq=acked, applied=len(fresh), replayed=replayed)

    @storage_unit
    async def save_beats(self, beats: Sequence[Beat]) -> None:
        """Upsert agents from buffered heartbeats (last-seen only moves forward)."""
        if not beats:
            return
        beats = sorted(beats, key=lambda b: b.agent.agent_id)  # same lock order as report batches
        rows = [(b.agent.agent_id, b.agent.province, b.agent.centre, b.health.host, b.health.version,
                 b.health.uptime_seconds, b.health.config_hash, b.health.certificate_not_after,
                 b.interval_s, 0, 0, b.seen_ms, b.seen_ms, b.health.trust_bundle_version,
                 b.health.trust_bundle_age_seconds) for b in beats]
        for attempt in range(3):
            try:
                await self._save_beat_rows(rows)
                return
            except self.retryable_errors:
                if attempt == 2:
                    raise

    async def _save_beat_rows(self, rows: Sequence[Row]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(
                f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "  # noqa: S608 - constant column lists only
                "ON CONFLICT (agent_id) DO UPDATE SET province = excluded.province, centre = excluded.centre, "
                "host = excluded.host, version = excluded.version, uptime_seconds = excluded.uptime_seconds, "
                "config_hash = excluded.config_hash, certificate_not_after = excluded.certificate_not_after, "
                "trust_version = excluded.trust_version, trust_age_s = excluded.trust_age_s, "
                "interval_s = excluded.interval_s, last_seen_ms = CASE WHEN excluded.last_seen_ms > "
                "agents.last_seen_ms THEN excluded.last_seen_ms ELSE agents.last_seen_ms END", rows)

    # -- reads -------------------------------------------------------------------------------

    @storage_unit
    async def cursor(self, agent_id: str) -> tuple[int, int] | None:
        """(epoch, acked_seq) of an agent, or None when unknown."""
        async with self.transaction() as tx:
            row = await tx.fetchone("SELECT epoch, acked_seq FROM agents WHERE agent_id = ?", (agent_id,))
        return (int(row[0]), int(row[1])) if row else None

    @storage_unit
    async def cursors(self) -> dict[str, tuple[int, int]]:
        """(epoch, acked_seq) of every agent that has reported."""
        async with self.transaction() as tx:
            rows = await tx.fetchall("SELECT agent_id, epoch, acked_seq FROM agents WHERE epoch != 0")
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    @storage_unit
    async def agents(self) -> list[AgentRow]:
        async with self.transaction() as tx:
            rows = await tx.fetchall(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY centre, agent_id")  # noqa: S608 - constant column lists only
        return [AgentRow(AgentRef(str(r[0]), str(r[1]), str(r[2])),
                         AgentHealthInfo(str(r[4]), int(r[5]), str(r[3]), str(r[6]), int(r[7]), str(r[13]),
                                         int(r[14])),
                         int(r[8]), int(r[9]), int(r[10]), int(r[11]), int(r[12])) for r in rows]

    @storage_unit
    async def devices(self) -> list[DeviceRow]:
        async with self.transaction() as tx:
            rows = await tx.fetchall(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY agent_id, device_id")  # noqa: S608 - constant column lists only
        return [_device_row(r) for r in rows]

    async def _devices_of(self, tx: Tx, agent_id: str) -> list[DeviceRow]:
        rows = await tx.fetchall(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE agent_id = ?", (agent_id,))  # noqa: S608 - constant column lists only
        return [_device_row(r) for r in rows]

    @storage_unit
    async def transitions(self, agent_id: str, device_id: str | None = None) -> list[Transition]:
        """State transitions of an agent's devices in arrival order."""
        sql = "SELECT agent_id, device_id, seq, state, observed_ms FROM transitions WHERE agent_id = ?"
        params: list[Any] = [agent_id]
        if device_id is not None:
            sql += " AND device_id = ?"
            params.append(device_id)
        async with self.transaction() as tx:
            rows = await tx.fetchall(sql + " ORDER BY id", params)
        return [Transition(str(r[0]), str(r[1]), int(r[2]), str(r[3]), int(r[4])) for r in rows]

    @storage_unit
    async def prune_transitions(self, older_than_ms: int) -> None:
        async with self.transaction() as tx:
            await tx.execute("DELETE FROM transitions WHERE received_ms < ?", (older_than_ms,))


def _device_params(row: DeviceRow) -> Row:
    r = row.report
    return (row.agent_id, r.device_id, r.kind, r.backend, r.name, r.vendor, r.model, r.state, r.last_error,
            json.dumps([[c.code, int(c.severity)] for c in r.conditions]),
            json.dumps([[s.name, s.kind, s.level_percent, s.color] for s in r.supplies]),
            json.dumps(dict(r.counters), sort_keys=True),
            row.state_since_ms, row.problem_since_ms, row.updated_ms)


def _device_row(r: Row) -> DeviceRow:
    report = DeviceReport(
        device_id=str(r[1]), kind=str(r[2]), backend=str(r[3]), name=str(r[4]), vendor=str(r[5]),
        model=str(r[6]), state=str(r[7]), last_error=str(r[8]),
        conditions=tuple(ConditionInfo(str(c), ProblemSeverity(int(s))) for c, s in json.loads(r[9])),
        supplies=tuple(SupplyInfo(str(n), str(k), int(lv), str(col)) for n, k, lv, col in json.loads(r[10])),
        counters={str(k): int(v) for k, v in json.loads(r[11]).items()})
    return DeviceRow(str(r[0]), report, int(r[12]), int(r[13]), int(r[14]))


