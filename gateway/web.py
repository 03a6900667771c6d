"""HTTP side of the gateway (loopback only): the IT dashboard, its JSON API, /metrics.

A small ASGI app run by uvicorn in the gateway's event loop. Responses carry a
strict Content-Security-Policy; the page builds its DOM with textContent only.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.fleet import AgentView, FleetView
from gateway.metrics import FleetCollector, GatewayMetrics

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
           "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}
_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'none'; frame-ancestors 'none'"


def _agent_json(view: AgentView) -> dict[str, Any]:
    row = view.row
    return {
        "agent_id": row.agent.agent_id, "province": row.agent.province, "centre": row.agent.centre,
        "status": view.status.value, "last_seen_ms": row.last_seen_ms, "host": row.health.host,
        "version": row.health.version, "uptime_seconds": row.health.uptime_seconds,
        "certificate_not_after": row.health.certificate_not_after,
        "devices": [{
            "device_id": d.report.device_id, "kind": d.report.kind, "name": d.report.name,
            "model": d.report.model, "state": d.report.state, "last_error": d.report.last_error,
            "state_since_ms": d.state_since_ms, "problem_since_ms": d.problem_since_ms,
            "conditions": [{"code": c.code, "severity": c.severity.label} for c in d.report.conditions],
            "supplies": [{"name": s.name, "kind": s.kind, "level": s.level_percent} for s in d.report.supplies],
            "counters": dict(d.report.counters),
        } for d in view.devices],
    }


class DashboardApp:
    def __init__(self, fleet: FleetView, registry: CollectorRegistry, metrics: GatewayMetrics,
                 collector: FleetCollector, pending_beats: Callable[[], int]) -> None:
        self._fleet = fleet
        self._registry = registry
        self._metrics = metrics
        self._collector = collector
        self._pending_beats = pending_beats
        package = resources.files("gateway") / "dashboard"
        self._static = {route: ((package / name).read_bytes(), ctype) for route, (name, ctype) in _STATIC.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = str(scope["path"])
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        if scope["method"] != "GET":
            await self._send(send, 405, b"method not allowed\n", "text/plain")
            return
        if path in self._static:
            body, ctype = self._static[path]
            await self._send(send, 200, body, ctype)
            return
        if path == "/metrics":
            self._collector.snapshot = await self._fleet.snapshot()
            self._metrics.beats_pending.set(self._pending_beats())
            await self._send(send, 200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
            return
        if path.startswith("/api/"):
            data = await self._api(path[5:], query)
            if data is None:
                await self._send(send, 404, b'{"error":"not found"}', "application/json")
            else:
                await self._send(send, 200, json.dumps(data).encode(), "application/json")
            return
        await self._send(send, 404, b"not found\n", "text/plain")

    async def _api(self, name: str, query: dict[str, str]) -> dict[str, Any] | None:
        snapshot = await self._fleet.snapshot()
        if name == "summary":
            return {"taken_ms": snapshot.taken_ms, "centres": [{
                "province": c.province, "centre": c.centre, "online": c.agents["online"],
                "offline": c.agents["offline"], "missing": c.agents["missing"], "devices": c.devices_total,
                "problems": c.devices_with_problems} for c in snapshot.centres(query.get("province", ""))]}
        if name == "agents":
            views = snapshot.agents_of(query.get("centre", ""), query.get("agent", ""))[:2000]
            return {"taken_ms": snapshot.taken_ms, "agents": [_agent_json(v) for v in views]}
        if name == "problems":
            return {"taken_ms": snapshot.taken_ms, "problems": [{
                "province": p.agent.province, "centre": p.agent.centre, "agent_id": p.agent.agent_id,
                "device_id": p.device_id, "kind": p.kind, "code": p.code, "severity": p.severity.label,
                "since_ms": p.since_ms, "detail": p.detail}
                for p in snapshot.problems(query.get("province", ""))[:2000]]}
        if name == "search":
            q = query.get("q", "")[:64]
            hits = snapshot.search(q, 200) if len(q) >= 2 else []
            return {"hits": [{"centre": h.agent.centre, "agent_id": h.agent.agent_id, "device_id": h.device_id,
                              "label": h.label} for h in hits]}
        return None

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, ctype: str) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", _CSP.encode())]})
        await send({"type": "http.response.body", "body": body})
