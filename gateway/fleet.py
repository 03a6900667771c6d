"""Fleet views for queries, metrics and the dashboard, derived from storage plus the
in-memory heartbeats, cached for a short time so a busy dashboard or a Prometheus
scrape does not hammer the database."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.ingest import BeatBuffer
from gateway.model import (
    CERT_WARNING_MS,
    AgentRef,
    AgentRow,
    AgentStatus,
    DeviceRow,
    ProblemSeverity,
    agent_status,
)
from gateway.store import FleetStore


@dataclass(frozen=True, slots=True)
class AgentView:
    row: AgentRow
    status: AgentStatus
    devices: tuple[DeviceRow, ...]


@dataclass(frozen=True, slots=True)
class CentreView:
    province: str
    centre: str
    agents: Counter[str]  # status -> count
    devices_total: int
    devices_with_problems: int


@dataclass(frozen=True, slots=True)
class ProblemView:
    agent: AgentRef
    device_id: str
    kind: str
    code: str
    severity: ProblemSeverity
    since_ms: int
    detail: str


@dataclass(frozen=True, slots=True)
class SearchHitView:
    agent: AgentRef
    device_id: str
    label: str


@dataclass(slots=True)
class FleetSnapshot:
    taken_ms: int
    agents: list[AgentView] = field(default_factory=list)

    def centres(self, province: str = "") -> list[CentreView]:
        grouped: dict[tuple[str, str], list[AgentView]] = defaultdict(list)
        for view in self.agents:
            if not province or view.row.agent.province == province:
                grouped[(view.row.agent.province, view.row.agent.centre)].append(view)
        return [CentreView(p, c, Counter(v.status.value for v in views),
                           sum(len(v.devices) for v in views),
                           sum(1 for v in views for d in v.devices if d.problem_since_ms))
                for (p, c), views in sorted(grouped.items())]

    def agents_of(self, centre: str = "", agent_id: str = "") -> list[AgentView]:
        return [v for v in self.agents
                if (not centre or v.row.agent.centre == centre) and (not agent_id or v.row.agent.agent_id == agent_id)]

    def problems(self, province: str = "") -> list[ProblemView]:
        found: list[ProblemView] = []
        for view in self.agents:
            agent = view.row.agent
            if province and agent.province != province:
                continue
            if view.status is not AgentStatus.ONLINE:
                found.append(ProblemView(agent, "", "", f"agent-{view.status.value}", ProblemSeverity.ERROR,
                                         view.row.last_seen_ms, f"silent since last report ({view.row.health.host})"))
            not_after = view.row.health.certificate_not_after * 1000
            if not_after and not_after - self.taken_ms < CERT_WARNING_MS:
                severity = ProblemSeverity.ERROR if not_after <= self.taken_ms else ProblemSeverity.WARNING
                found.append(ProblemView(agent, "", "", "certificate-expiring", severity,
                                         self.taken_ms, "client certificate expires soon"))
            for device in view.devices:
                for code, severity, detail in device.report.problems():
                    found.append(ProblemView(agent, device.report.device_id, device.report.kind, code, severity,
                                             device.problem_since_ms or device.updated_ms,
                                             f"{device.report.name}: {detail}"))
        found.sort(key=lambda p: (-int(p.severity), p.since_ms, p.agent.centre, p.agent.agent_id, p.device_id))
        return found

    def search(self, query: str, limit: int) -> list[SearchHitView]:
        needle = query.casefold()
        hits: list[SearchHitView] = []
        for view in self.agents:
            agent = view.row.agent
            if needle in agent.centre.casefold() or needle in agent.agent_id.casefold() \
                    or needle in view.row.health.host.casefold():
                hits.append(SearchHitView(agent, "", f"{agent.centre} / {agent.agent_id}"))
            for device in view.devices:
                r = device.report
                if any(needle in s.casefold() for s in (r.device_id, r.name, r.model, r.vendor)):
                    label = f"{r.name} [{r.device_id}] ({r.kind}) on {agent.agent_id}"
                    hits.append(SearchHitView(agent, r.device_id, label))
            if len(hits) >= limit:
                break
        return hits[:limit]


class FleetView:
    """Builds (and caches for ``ttl`` seconds) a :class:`FleetSnapshot`."""

    def __init__(self, store: FleetStore, beats: BeatBuffer, *, ttl: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._beats = beats
        self._ttl = ttl
        self._clock = clock
        self._cached: FleetSnapshot | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()

    async def snapshot(self) -> FleetSnapshot:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached_at < self._ttl:
                return self._cached
            self._cached = await self._build()
            self._cached_at = time.monotonic()
            return self._cached

    def invalidate(self) -> None:
        self._cached = None

    async def _build(self) -> FleetSnapshot:
        now_ms = int(self._clock() * 1000)
        rows = {r.agent.agent_id: r for r in await self._store.agents()}
        for agent_id, beat in list(self._beats.latest.items()):
            row = rows.get(agent_id)
            if row is None:
                rows[agent_id] = AgentRow(beat.agent, beat.health, beat.interval_s, 0, 0, beat.seen_ms, beat.seen_ms)
            elif beat.seen_ms > row.last_seen_ms:
                rows[agent_id] = AgentRow(beat.agent, beat.health, beat.interval_s, row.epoch, row.acked_seq,
                                          beat.seen_ms, row.first_seen_ms)
        devices: dict[str, list[DeviceRow]] = defaultdict(list)
        for device in await self._store.devices():
            devices[device.agent_id].append(device)
        views = [AgentView(row, agent_status(row.last_seen_ms, row.interval_s, now_ms),
                           tuple(devices.get(agent_id, ())))
                 for agent_id, row in rows.items()]
        views.sort(key=lambda v: (v.row.agent.province, v.row.agent.centre, v.row.agent.agent_id))
        return FleetSnapshot(now_ms, views)
