"""The uplink as one unit the daemon starts and stops.

The daemon builds :class:`UplinkOptions` from its ``[uplink]`` config table, hands
over a :class:`HealthSource` (``RegistryHealthSource(registry, bus)``) and the
state directory, and calls :meth:`Uplink.start` / :meth:`Uplink.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry

from agent.drivers.idcard.trust_bundle import TrustBundleHealth
from agent.errors import ConfigError
from agent.uplink.backoff import BackoffPolicy
from agent.uplink.credentials import StaticTokenCredentials, UplinkCredentials
from agent.uplink.outbox import Outbox, OutboxLimits
from agent.uplink.reporter import AgentFacts, HealthReporter, HealthSource, ReporterSettings, UplinkMetrics

OUTBOX_FILE = "uplink-outbox.db"


class Renewer(Protocol):
    """Keeps the client certificate fresh (agent.provisioning.enroll.CertificateRenewer)."""

    async def run(self) -> None: ...


class TrustRefresher(Protocol):
    """Keeps the gateway's trust bundle fresh (agent.uplink.trust_fetch.TrustFetcher)."""

    async def run(self) -> None: ...


@dataclass(frozen=True, slots=True)
class UplinkOptions:
    gateway: str  # HOST:PORT of centre-gateway
    token: str  # static fleet token until enrolment (issue 8) provides a client certificate
    agent_id: str
    province: str
    centre: str
    ca_file: str = ""  # PEM bundle to verify the gateway; "" = plaintext (loopback/tests only)
    heartbeat_seconds: float = 60.0
    diff_seconds: float = 10.0
    snapshot_seconds: float = 4 * 3600.0
    first_delay_max_seconds: float = 90.0
    outbox_max_bytes: int = 8 * 1024 * 1024
    outbox_max_age_seconds: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        host, sep, port = self.gateway.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError("uplink.gateway: expected HOST:PORT")
        for name in ("heartbeat_seconds", "diff_seconds", "snapshot_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"uplink.{name}: must be > 0")

    def __repr__(self) -> str:
        return f"UplinkOptions(gateway={self.gateway!r}, agent_id={self.agent_id!r}, token=<redacted>)"


class Uplink:
    def __init__(self, options: UplinkOptions, source: HealthSource, state_dir: Path, *, version: str,
                 config_hash: str, registry: CollectorRegistry | None = None,
                 credentials: UplinkCredentials | None = None, renewer: Renewer | None = None,
                 trust: TrustRefresher | None = None,
                 trust_health: Callable[[], TrustBundleHealth] | None = None) -> None:
        if credentials is None:
            roots = Path(options.ca_file).read_bytes() if options.ca_file else None
            credentials = StaticTokenCredentials(options.token, root_certificates=roots)
        self.metrics = UplinkMetrics(registry)
        self.outbox = Outbox(state_dir / OUTBOX_FILE, OutboxLimits(options.outbox_max_bytes,
                                                                   options.outbox_max_age_seconds))
        facts = AgentFacts(agent_id=options.agent_id, province=options.province, centre=options.centre,
                           version=version, host=socket.gethostname(), config_hash=config_hash)
        settings = ReporterSettings(target=options.gateway, heartbeat_interval=options.heartbeat_seconds,
                                    diff_interval=options.diff_seconds, snapshot_interval=options.snapshot_seconds,
                                    backoff=BackoffPolicy(first_delay_max=options.first_delay_max_seconds))
        self.reporter = HealthReporter(source, facts, credentials, self.outbox, settings, metrics=self.metrics)
        self.reporter.trust_health = trust_health
        self.renewer = renewer
        self.trust = trust
        self._task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._trust_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.reporter.run(), name="uplink")
        if self.renewer is not None and self._renew_task is None:
            self._renew_task = asyncio.create_task(self.renewer.run(), name="uplink-renew")
        if self.trust is not None and self._trust_task is None:
            self._trust_task = asyncio.create_task(self.trust.run(), name="uplink-trust")

    async def stop(self) -> None:
        for task in (self._trust_task, self._renew_task, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._renew_task = self._trust_task = None
        self.outbox.close()
