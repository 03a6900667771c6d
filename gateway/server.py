"""Wiring of one gateway process: storage, write path, gRPC services, HTTP side."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import time
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from grpc import aio
from prometheus_client import CollectorRegistry

from centre.gateway.v1 import enrollment_pb2_grpc, fleet_pb2_grpc, reporting_pb2_grpc
from gateway.admission import TokenBucket
from gateway.auth import AgentAuthenticator, BearerTokenAuthenticator
from gateway.config import GatewayConfig, split_hostport
from gateway.fleet import FleetView
from gateway.ingest import BeatBuffer, ReportWriter
from gateway.metrics import FleetCollector, GatewayMetrics
from gateway.service import FleetQueryService, ReportingService
from gateway.store import FleetStore, open_store
from gateway.web import DashboardApp

log = logging.getLogger(__name__)


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway process owns SIGTERM/SIGINT."""

    def capture_signals(self) -> contextlib.nullcontext[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class Gateway:
    """One running gateway. ``start`` then ``stop``; ``grpc_port``/``http_port`` are the bound ports."""

    def __init__(self, config: GatewayConfig, store: FleetStore | None = None, *, worker: int = 0,
                 grpc_port: int | None = None) -> None:
        """``worker`` > 0 is an extra process sharing the gRPC port (SO_REUSEPORT) and the
        database with worker 0, which alone serves HTTP; ``grpc_port`` overrides the config's."""
        self.config = config
        self.worker = worker
        self._grpc_port_override = grpc_port
        self.store = store or open_store(config.storage_backend, path=config.storage_path,
                                         dsn=config.storage_dsn, pool_size=config.pool_size)
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.collector = FleetCollector()
        self.registry.register(self.collector)
        self.writer = ReportWriter(self.store, max_batch=config.write_batch, on_batch=self.metrics.on_batch)
        self.beats = BeatBuffer(self.store, flush_interval=config.heartbeat_flush_seconds,
                                on_flush=self.metrics.on_flush)
        self.fleet = FleetView(self.store, self.beats, ttl=config.view_cache_seconds)
        self._tasks: list[asyncio.Task[None]] = []
        self._grpc: aio.Server | None = None
        self._http: uvicorn.Server | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.enroll_port = 0
        self._enroll: aio.Server | None = None
        self.provisioner: Any = None  # gateway.enrollment.Provisioner when identity is enabled

    async def start(self) -> None:
        await self.store.open()
        self.writer.cursors.update(await self.store.cursors())
        self._tasks.append(asyncio.create_task(self.writer.run(), name="report-writer"))
        self._tasks.append(asyncio.create_task(self.beats.run(), name="heartbeat-flush"))
        self._tasks.append(asyncio.create_task(self._maintain(), name="maintenance"))
        bucket = (TokenBucket(self.config.admission_rate, self.config.admission_burst)
                  if self.config.admission_enabled else None)
        agents: AgentAuthenticator = BearerTokenAuthenticator(self.config.agent_tokens)
        admins = BearerTokenAuthenticator(self.config.admin_tokens)
        limit = self.config.max_message_bytes
        server = aio.server(options=[("grpc.max_receive_message_length", limit),
                                     ("grpc.max_send_message_length", limit),
                                     ("grpc.so_reuseport", 1 if self.config.workers > 1 else 0)])
        tls: grpc.ServerCredentials | None = None
        if self.config.identity_enabled:
            tls, agents = await self._start_identity(server)
        reporting_pb2_grpc.add_AgentReportingServicer_to_server(
            ReportingService(writer=self.writer, beats=self.beats, auth=agents, metrics=self.metrics,
                             bucket=bucket, fleet=self.fleet), server)
        fleet_pb2_grpc.add_FleetQueryServicer_to_server(
            FleetQueryService(fleet=self.fleet, auth=admins, metrics=self.metrics), server)
        host, port = split_hostport(self.config.grpc_listen, "server.grpc_listen")
        if self._grpc_port_override is not None:
            port = self._grpc_port_override
        self.grpc_port = (server.add_secure_port(f"{host}:{port}", tls) if tls is not None
                          else server.add_insecure_port(f"{host}:{port}"))
        await server.start()
        self._grpc = server
        if self.provisioner is not None and not self.provisioner.report_endpoint:
            self.provisioner.report_endpoint = f"{self.config.server_names[0]}:{self.grpc_port}"
        if self.worker == 0:
            await self._start_http()
        # Everything allocated so far (modules, classes, protobuf descriptors) lives as long as
        # the process: keep it out of the collector's full scans, which otherwise pause the
        # loop for ~100 ms and show up as the p99.
        gc.collect()
        gc.freeze()

    async def _start_identity(self, reporting: aio.Server) -> tuple[grpc.ServerCredentials, AgentAuthenticator]:
        """CA, access list, the enrolment server (worker 0) and the mTLS credentials for ``reporting``."""
        from gateway.ca import CertificateAuthority
        from gateway.enrollment import (
            AccessHolder,
            AgentCheckService,
            CertificateAuthenticator,
            EnrollmentService,
            Provisioner,
        )
        from gateway.store.identity import IdentityRegistry
        from gateway.store.trust import TrustRegistry

        config = self.config

        def load() -> tuple[CertificateAuthority, bytes, bytes]:
            ca = CertificateAuthority.load_or_create(Path(config.state_dir) / "ca", cert_file=config.ca_cert,
                                                     key_file=config.ca_key)
            if config.server_cert:
                return ca, Path(config.server_cert).read_bytes(), Path(config.server_key).read_bytes()
            return (ca, *ca.server_certificate(list(config.server_names)))

        ca, cert_pem, key_pem = await asyncio.to_thread(load)
        registry = IdentityRegistry(self.store)
        access = AccessHolder(registry, config.access_refresh_seconds)
        await access.refresh()
        self._tasks.append(asyncio.create_task(access.run(), name="access-refresh"))
        auth = CertificateAuthenticator(access)
        enrollment_pb2_grpc.add_AgentCheckServicer_to_server(AgentCheckService(auth, registry, self.metrics,
                                                                               TrustRegistry(self.store)),
                                                             reporting)
        mtls = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca.cert_pem,
                                           require_client_auth=True)
        if self.worker == 0:
            # report_endpoint is completed once the reporting port is bound (start)
            provisioner = Provisioner(registry, ca, access, lifetime=dt.timedelta(days=config.cert_lifetime_days),
                                      grace=dt.timedelta(days=config.grace_days), chain_pem=ca.cert_pem,
                                      report_endpoint=config.report_endpoint)
            self.provisioner = provisioner
            enroll = aio.server()
            enrollment_pb2_grpc.add_EnrollmentServicer_to_server(EnrollmentService(provisioner, self.metrics), enroll)
            fleet_pb2_grpc.add_FleetQueryServicer_to_server(
                FleetQueryService(fleet=self.fleet, auth=BearerTokenAuthenticator(config.admin_tokens),
                                  metrics=self.metrics), enroll)
            host, port = split_hostport(config.enroll_listen, "identity.enroll_listen")
            self.enroll_port = enroll.add_secure_port(
                f"{host}:{port}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
            await enroll.start()
            self._enroll = enroll
        return mtls, auth

    async def _start_http(self) -> None:
        http_host, http_port = split_hostport(self.config.http_listen, "server.http_listen")
        app = DashboardApp(self.fleet, self.registry, self.metrics, self.collector, lambda: self.beats.pending)
        http = _HttpServer(uvicorn.Config(app, host=http_host, port=http_port, lifespan="off",
                                             access_log=False, log_level="warning", loop="none"))
        self._http = http
        self._tasks.append(asyncio.create_task(http.serve(), name="http"))
        while not http.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()
            await asyncio.sleep(0.01)
        self.http_port = http.servers[0].sockets[0].getsockname()[1]

    async def _maintain(self, every: float = 3600.0) -> None:
        """Prune the transition history past its retention, hourly."""
        retention_ms = int(self.config.transition_retention_days * 86400 * 1000)
        while True:
            try:
                await self.store.prune_transitions(int(time.time() * 1000) - retention_ms)
            except Exception as exc:  # storage hiccup: try again next round
                log.warning("pruning transitions failed: %s", type(exc).__name__)
            await asyncio.sleep(every)

    async def stop(self) -> None:
        if self._http is not None:
            self._http.should_exit = True
        if self._enroll is not None:
            await self._enroll.stop(grace=1.0)
        if self._grpc is not None:
            await self._grpc.stop(grace=2.0)
        for task in self._tasks:
            if task.get_name() != "http":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.beats.flush()
        await self.store.close()


__all__ = ["Gateway", "grpc"]
