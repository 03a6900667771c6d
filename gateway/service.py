"""gRPC services: AgentReporting (agents) and FleetQuery (IT tools).

Gateway errors map to gRPC status codes here and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc import aio

from agent.errors import (
    AgentError,
    ForbiddenError,
    InvalidRequestError,
    RateLimitedError,
    UnauthenticatedError,
)
from centre.gateway.v1 import fleet_pb2, fleet_pb2_grpc, reporting_pb2, reporting_pb2_grpc
from gateway import convert
from gateway.admission import TokenBucket
from gateway.auth import AdminAuthenticator, AgentAuthenticator, CallerCredentials
from gateway.fleet import FleetView
from gateway.ingest import BeatBuffer, ReportWriter
from gateway.metrics import GatewayMetrics
from gateway.model import Beat, ProblemSeverity

log = logging.getLogger(__name__)

#: Trailing-metadata key carrying the shed retry hint, in milliseconds.
RETRY_AFTER_KEY = "retry-after-ms"

_STATUS: dict[type[AgentError], grpc.StatusCode] = {
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    ForbiddenError: grpc.StatusCode.PERMISSION_DENIED,
    RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _caller(context: aio.ServicerContext[Req, Resp]) -> CallerCredentials:
    metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}

    def peer() -> dict[str, tuple[bytes, ...]]:
        return {k: tuple(v) for k, v in (context.auth_context() or {}).items()}

    return CallerCredentials(metadata, peer)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Guard:
    """Admission, error mapping and self-metrics around every handler."""

    def __init__(self, metrics: GatewayMetrics, bucket: TokenBucket | None) -> None:
        self._metrics = metrics
        self._bucket = bucket
        self._ok: dict[str, Any] = {}  # method -> (ok counter child, latency child): the hot path

    async def run(self, method: str, context: aio.ServicerContext[Req, Resp], cost: float,
                  handler: Callable[[], Awaitable[Resp]]) -> Resp:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if self._bucket is not None:
                wait = self._bucket.try_take(cost)
                if wait > 0:
                    self._metrics.shed.labels(method).inc()
                    context.set_trailing_metadata(((RETRY_AFTER_KEY, str(int(wait * 1000))),))
                    raise RateLimitedError("gateway busy, retry later")
            return await handler()
        except AgentError as exc:
            code = _STATUS.get(type(exc), grpc.StatusCode.FAILED_PRECONDITION)
            for cls, mapped in _STATUS.items():
                if isinstance(exc, cls):
                    code = mapped
                    break
            await context.abort(code, exc.message)
        except aio.AbortError:
            code = grpc.StatusCode.ABORTED
            raise
        except Exception as exc:
            code = grpc.StatusCode.UNAVAILABLE
            log.error("%s failed: %s", method, type(exc).__name__)
            await context.abort(code, "gateway storage unavailable")
        finally:
            children = self._ok.get(method)
            if children is None:
                children = self._ok[method] = (self._metrics.rpcs.labels(method, "OK"),
                                               self._metrics.latency.labels(method))
            if code is grpc.StatusCode.OK:
                children[0].inc()
            else:
                self._metrics.rpcs.labels(method, code.name).inc()
            children[1].observe(time.perf_counter() - started)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover


class ReportingService(reporting_pb2_grpc.AgentReportingServicer):
    def __init__(self, *, writer: ReportWriter, beats: BeatBuffer, auth: AgentAuthenticator,
                 metrics: GatewayMetrics, bucket: TokenBucket | None, fleet: FleetView) -> None:
        self._writer = writer
        self._beats = beats
        self._auth = auth
        self._metrics = metrics
        self._guard = _Guard(metrics, bucket)
        self._fleet = fleet

    async def Heartbeat(self, request: reporting_pb2.HeartbeatRequest,
                        context: aio.ServicerContext[reporting_pb2.HeartbeatRequest,
                                                     reporting_pb2.HeartbeatResponse],
                        ) -> reporting_pb2.HeartbeatResponse:
        async def handle() -> reporting_pb2.HeartbeatResponse:
            if not request.HasField("agent"):
                raise InvalidRequestError("agent: missing")
            agent = self._auth.authenticate(_caller(context), convert.agent_ref(request.agent))
            health = convert.agent_health(request.health)
            if not 1 <= request.interval_seconds <= 3600:
                raise InvalidRequestError("interval_seconds: outside 1..3600")
            now = _now_ms()
            self._beats.record(Beat(agent, health, request.interval_seconds, now))
            # Cursors of every agent are loaded at start and kept by the writer, so a heartbeat
            # never touches storage. (With several replicas an agent that reported elsewhere
            # since this one started looks unknown here: it is asked for one spare snapshot.)
            cursor = self._writer.cursors.get(agent.agent_id)
            acked = cursor[1] if cursor is not None and cursor[0] == request.epoch else 0
            return reporting_pb2.HeartbeatResponse(
                acked_seq=acked, snapshot_requested=cursor is None or cursor[0] != request.epoch,
                server_time_ms=now)
        return await self._guard.run("Heartbeat", context, 1.0, handle)

    async def ReportDevices(self, request: reporting_pb2.ReportDevicesRequest,
                            context: aio.ServicerContext[reporting_pb2.ReportDevicesRequest,
                                                         reporting_pb2.ReportDevicesResponse],
                            ) -> reporting_pb2.ReportDevicesResponse:
        async def handle() -> reporting_pb2.ReportDevicesResponse:
            now = _now_ms()
            report = convert.agent_report(request, now)
            agent = self._auth.authenticate(_caller(context), report.agent)
            if agent != report.agent:
                report = type(report)(agent, report.epoch, report.updates, report.received_ms, report.health)
            result = await self._writer.submit(report)
            self._beats.touch(agent.agent_id, now)
            self._metrics.entries.labels("applied").inc(result.applied)
            self._metrics.entries.labels("replayed").inc(result.replayed)
            if result.applied:
                self._fleet.invalidate()
            return reporting_pb2.ReportDevicesResponse(acked_seq=result.acked_seq, applied=result.applied)
        return await self._guard.run("ReportDevices", context, 1.0 + len(request.updates) / 100, handle)


_SEVERITY_PB = {ProblemSeverity.INFO: reporting_pb2.SEVERITY_INFO,
                ProblemSeverity.WARNING: reporting_pb2.SEVERITY_WARNING,
                ProblemSeverity.ERROR: reporting_pb2.SEVERITY_ERROR}


def _limit(value: int, default: int, cap: int) -> int:
    return min(value or default, cap)


class FleetQueryService(fleet_pb2_grpc.FleetQueryServicer):
    def __init__(self, *, fleet: FleetView, auth: AdminAuthenticator, metrics: GatewayMetrics) -> None:
        self._fleet = fleet
        self._auth = auth
        self._guard = _Guard(metrics, None)

    async def GetFleetSummary(self, request: fleet_pb2.GetFleetSummaryRequest,
                              context: aio.ServicerContext[fleet_pb2.GetFleetSummaryRequest,
                                                           fleet_pb2.GetFleetSummaryResponse],
                              ) -> fleet_pb2.GetFleetSummaryResponse:
        async def handle() -> fleet_pb2.GetFleetSummaryResponse:
            self._auth.authorize(_caller(context))
            snapshot = await self._fleet.snapshot()
            return fleet_pb2.GetFleetSummaryResponse(centres=[
                fleet_pb2.CentreSummary(province=c.province, centre=c.centre, agents_online=c.agents["online"],
                                        agents_offline=c.agents["offline"], agents_missing=c.agents["missing"],
                                        devices_total=c.devices_total,
                                        devices_with_problems=c.devices_with_problems)
                for c in snapshot.centres(request.province)])
        return await self._guard.run("GetFleetSummary", context, 0, handle)

    async def ListAgents(self, request: fleet_pb2.ListAgentsRequest,
                         context: aio.ServicerContext[fleet_pb2.ListAgentsRequest, fleet_pb2.ListAgentsResponse],
                         ) -> fleet_pb2.ListAgentsResponse:
        async def handle() -> fleet_pb2.ListAgentsResponse:
            self._auth.authorize(_caller(context))
            snapshot = await self._fleet.snapshot()
            views = snapshot.agents_of(request.centre)[:_limit(request.limit, 1000, 10000)]
            return fleet_pb2.ListAgentsResponse(agents=[
                fleet_pb2.AgentRecord(agent=convert.identity_pb(v.row.agent), health=convert.health_pb(v.row.health),
                                      status=convert.AGENT_STATUS_PB[v.status.value],
                                      last_seen_ms=v.row.last_seen_ms,
                                      devices=[convert.device_pb(d.report) for d in v.devices])
                for v in views])
        return await self._guard.run("ListAgents", context, 0, handle)

    async def ListProblems(self, request: fleet_pb2.ListProblemsRequest,
                           context: aio.ServicerContext[fleet_pb2.ListProblemsRequest,
                                                        fleet_pb2.ListProblemsResponse],
                           ) -> fleet_pb2.ListProblemsResponse:
        async def handle() -> fleet_pb2.ListProblemsResponse:
            self._auth.authorize(_caller(context))
            snapshot = await self._fleet.snapshot()
            problems = snapshot.problems(request.province)[:_limit(request.limit, 1000, 10000)]
            return fleet_pb2.ListProblemsResponse(problems=[
                fleet_pb2.Problem(agent=convert.identity_pb(p.agent), device_id=p.device_id, kind=p.kind,
                                  code=p.code, severity=_SEVERITY_PB[p.severity], since_ms=p.since_ms,
                                  detail=p.detail)
                for p in problems])
        return await self._guard.run("ListProblems", context, 0, handle)

    async def Search(self, request: fleet_pb2.SearchRequest,
                     context: aio.ServicerContext[fleet_pb2.SearchRequest, fleet_pb2.SearchResponse],
                     ) -> fleet_pb2.SearchResponse:
        async def handle() -> fleet_pb2.SearchResponse:
            self._auth.authorize(_caller(context))
            if not 2 <= len(request.query) <= 64:
                raise InvalidRequestError("query: 2-64 characters")
            snapshot = await self._fleet.snapshot()
            hits = snapshot.search(request.query, _limit(request.limit, 100, 1000))
            return fleet_pb2.SearchResponse(hits=[
                fleet_pb2.SearchHit(agent=convert.identity_pb(h.agent), device_id=h.device_id, label=h.label)
                for h in hits])
        return await self._guard.run("Search", context, 0, handle)
