"""The health reporter: turns core device state into outbox entries and ships them.

- Device changes are coalesced: at most one diff round per ``diff_interval``,
  carrying the latest state of each device that changed since the last round.
- A full snapshot is appended at start, whenever the set of devices changes,
  every ``snapshot_interval``, after the outbox lost state, and when the gateway
  asks for one.
- One link loop sends heartbeats every ``heartbeat_interval`` and drains the
  outbox in seq order; an ack deletes entries. Failures back off (gRPC
  connection backoff, at least the gateway's retry hint after a shed); the very
  first attempt waits a random delay so a whole fleet does not start in step.

Only health travels: state, reason codes, counters, supplies. Never serials,
addresses, lease holders or anything a citizen handed to a device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Gauge

from agent.domain.device import DeviceInfo, DeviceState, Severity
from agent.drivers.idcard.trust_bundle import TrustBundleHealth
from agent.uplink.backoff import Backoff, BackoffPolicy
from agent.uplink.credentials import UplinkCredentials
from agent.uplink.outbox import KIND_SNAPSHOT, KIND_STATUS, Outbox, OutboxEntry
from centre.gateway.v1 import reporting_pb2, reporting_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")
RunBlocking = Callable[..., Awaitable[Any]]

_STATE = {DeviceState.PRESENT: reporting_pb2.DEVICE_STATE_PRESENT, DeviceState.READY: reporting_pb2.DEVICE_STATE_READY,
          DeviceState.BUSY: reporting_pb2.DEVICE_STATE_BUSY, DeviceState.ERROR: reporting_pb2.DEVICE_STATE_ERROR,
          DeviceState.GONE: reporting_pb2.DEVICE_STATE_GONE}
_SEVERITY = {Severity.INFO: reporting_pb2.SEVERITY_INFO, Severity.WARNING: reporting_pb2.SEVERITY_WARNING,
             Severity.ERROR: reporting_pb2.SEVERITY_ERROR}
_CODE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_RETRY_AFTER_KEY = "retry-after-ms"


class HealthSource(Protocol):
    """What the uplink reads from the core (implemented by the device registry)."""

    def devices(self) -> Sequence[DeviceInfo]:
        """Every device currently in the registry."""
        ...

    def add_change_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) after any device's info or health changed;
        returns a function that removes the listener."""
        ...


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """Agent-level identity and health the reporter sends with every heartbeat."""

    agent_id: str
    province: str
    centre: str
    version: str
    host: str
    config_hash: str
    started_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class ReporterSettings:
    target: str  # gateway HOST:PORT
    heartbeat_interval: float = 60.0
    diff_interval: float = 10.0
    snapshot_interval: float = 4 * 3600.0
    call_timeout: float = 10.0
    batch_entries: int = 200
    batch_bytes: int = 512 * 1024
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


class UplinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.dropped = Counter("centre_agent_uplink_dropped_entries", "Telemetry entries dropped by the outbox",
                               ["reason"], registry=self.registry)
        self.outbox_bytes = Gauge("centre_agent_uplink_outbox_bytes", "Bytes waiting in the outbox",
                                  registry=self.registry)
        self.outbox_entries = Gauge("centre_agent_uplink_outbox_entries", "Entries waiting in the outbox",
                                    registry=self.registry)
        self.sent = Counter("centre_agent_uplink_acked_entries", "Entries acked by the gateway",
                            registry=self.registry)
        self.failures = Counter("centre_agent_uplink_failures", "Failed gateway calls by status code", ["code"],
                                registry=self.registry)
        self.connected = Gauge("centre_agent_uplink_connected", "1 while the last gateway call succeeded",
                               registry=self.registry)


def _code(value: str, fallback: str) -> str:
    return value if _CODE.match(value) else fallback


def device_status(info: DeviceInfo) -> reporting_pb2.DeviceStatus:
    """The privacy-safe report of one device (no serial, address or lease holder)."""
    health = info.health
    name = info.name.replace(info.serial, "*") if len(info.serial) >= 4 else info.name  # serials stay on the PC
    return reporting_pb2.DeviceStatus(
        device_id=info.id, kind=info.family.value, backend=info.backend[:32], name=name[:128],
        vendor=info.vendor[:64], model=info.model[:64], state=_STATE[info.state],
        last_error=_code(health.last_error, "ERROR") if health.last_error else "",
        conditions=[reporting_pb2.Condition(code=_code(c.code, "unknown"), severity=_SEVERITY[c.severity])
                    for c in health.conditions[:32]],
        supplies=[reporting_pb2.Supply(name=s.name[:64], kind=s.kind[:32], color=s.color[:32],
                                       level_percent=max(-1, min(100, s.level_percent)))
                  for s in health.supplies[:32]],
        counters={k: max(0, int(v)) for k, v in list(health.counters.items())[:32] if _CODE.match(k)})


class HealthReporter:
    def __init__(self, source: HealthSource, facts: AgentFacts, credentials: UplinkCredentials, outbox: Outbox,
                 settings: ReporterSettings, *, metrics: UplinkMetrics | None = None,
                 run_blocking: RunBlocking | None = None, backoff: Backoff | None = None) -> None:
        self._source = source
        self._facts = facts
        #: the trust bundle's version and age for every heartbeat (set by the uplink when enrolled)
        self.trust_health: Callable[[], TrustBundleHealth] | None = None
        self._credentials = credentials
        self._outbox = outbox
        self.settings = settings
        self.metrics = metrics or UplinkMetrics()
        self._run_blocking: RunBlocking = run_blocking or asyncio.to_thread
        self._backoff = backoff or Backoff(settings.backoff)
        self._last: dict[str, bytes] = {}
        self._changed = asyncio.Event()
        self._appended = asyncio.Event()
        self._last_snapshot = 0.0
        self._snapshot_requested = False
        self._reachable: bool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        outbox.add_drop_listener(self._dropped)

    def _dropped(self, reason: str, count: int) -> None:
        self.metrics.dropped.labels(reason).inc(count)

    # -- change collection ---------------------------------------------------------------------

    def _on_change(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._changed.set)

    async def _append(self, kind: str, device_id: str, payload: bytes) -> None:
        await self._run_blocking(self._outbox.append, kind, device_id, payload)
        self._gauge()
        self._appended.set()

    def _gauge(self) -> None:
        self.metrics.outbox_bytes.set(self._outbox.size_bytes)
        self.metrics.outbox_entries.set(len(self._outbox))

    def _update(self, **change: Any) -> bytes:
        return reporting_pb2.DeviceUpdate(observed_at_ms=int(time.time() * 1000), **change).SerializeToString()

    async def append_snapshot(self) -> None:
        statuses = {d.id: device_status(d) for d in self._source.devices()}
        payload = self._update(snapshot=reporting_pb2.DeviceSnapshot(devices=list(statuses.values())))
        await self._append(KIND_SNAPSHOT, "", payload)
        self._last = {k: v.SerializeToString(deterministic=True) for k, v in statuses.items()}
        self._last_snapshot = time.monotonic()
        self._snapshot_requested = False

    async def collect(self) -> None:
        """Append what changed since the last round: diffs, or a snapshot when the device set
        changed, a periodic snapshot is due, or the outbox lost state."""
        statuses = {d.id: device_status(d) for d in self._source.devices()}
        due = time.monotonic() - self._last_snapshot >= self.settings.snapshot_interval
        wanted = await self._run_blocking(self._outbox.snapshot_wanted)
        if set(statuses) != set(self._last) or due or wanted or self._snapshot_requested:
            await self.append_snapshot()
            return
        for device_id, status in statuses.items():
            encoded = status.SerializeToString(deterministic=True)
            if self._last.get(device_id) != encoded:
                await self._append(KIND_STATUS, device_id, self._update(status=status))
                self._last[device_id] = encoded

    async def _collect_loop(self) -> None:
        last_round = 0.0
        while True:
            timeout = max(0.0, self._last_snapshot + self.settings.snapshot_interval - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
            wait = last_round + self.settings.diff_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce everything that changes meanwhile
            self._changed.clear()
            last_round = time.monotonic()
            try:
                await self.collect()
            except Exception as exc:  # a bad device or a full disk must not stop the uplink
                log.warning("collecting device health failed: %s", type(exc).__name__)

    # -- link ----------------------------------------------------------------------------------

    def _identity(self) -> reporting_pb2.AgentIdentity:
        f = self._facts
        return reporting_pb2.AgentIdentity(agent_id=f.agent_id, province=f.province, centre=f.centre)

    def _health(self) -> reporting_pb2.AgentHealth:
        f = self._facts
        trust = self.trust_health() if self.trust_health is not None else None
        return reporting_pb2.AgentHealth(version=f.version, uptime_seconds=int(time.monotonic() - f.started_at),
                                         host=f.host, config_hash=f.config_hash,
                                         certificate_not_after=self._credentials.certificate_not_after(),
                                         trust_bundle_version=trust.version if trust else "",
                                         trust_bundle_age_seconds=int(trust.age_seconds) if trust else 0)

    async def _heartbeat(self, stub: reporting_pb2_grpc.AgentReportingAsyncStub) -> None:
        request = reporting_pb2.HeartbeatRequest(
            agent=self._identity(), health=self._health(),
            interval_seconds=max(1, int(self.settings.heartbeat_interval)),
            epoch=self._outbox.epoch, last_seq=self._outbox.last_seq)
        reply: reporting_pb2.HeartbeatResponse = await stub.Heartbeat(
            request, metadata=self._credentials.call_metadata(), timeout=self.settings.call_timeout)
        if reply.acked_seq:
            await self._ack(reply.acked_seq)
        if reply.snapshot_requested and len(self._outbox) == 0:
            self._snapshot_requested = True
            self._changed.set()

    async def _ack(self, seq: int) -> None:
        removed = await self._run_blocking(self._outbox.ack, seq)
        self.metrics.sent.inc(removed)
        self._gauge()

    async def _send(self, stub: reporting_pb2_grpc.AgentReportingAsyncStub, entries: list[OutboxEntry]) -> None:
        updates = []
        for entry in entries:
            update = reporting_pb2.DeviceUpdate.FromString(entry.payload)
            update.seq = entry.seq
            updates.append(update)
        request = reporting_pb2.ReportDevicesRequest(agent=self._identity(), epoch=self._outbox.epoch,
                                                     updates=updates, health=self._health())
        try:
            reply: reporting_pb2.ReportDevicesResponse = await stub.ReportDevices(
                request, metadata=self._credentials.call_metadata(), timeout=self.settings.call_timeout)
        except aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            # The gateway refuses the batch for good. Find the poison entry by halving, so
            # valid entries still arrive; a rejected entry is dropped and counted.
            if len(entries) == 1:
                log.warning("gateway rejected outbox entry %d; dropped", entries[0].seq)
                await self._run_blocking(self._outbox.drop, [entries[0].seq], "rejected")
                self._gauge()
                return
            half = len(entries) // 2
            await self._send(stub, entries[:half])
            await self._send(stub, entries[half:])
            return
        await self._ack(reply.acked_seq)

    def _set_reachable(self, reachable: bool, detail: str = "") -> None:
        self.metrics.connected.set(1 if reachable else 0)
        if reachable != self._reachable:  # log the change once, not every failed call
            if reachable:
                log.info("gateway %s reachable", self.settings.target)
            else:
                log.warning("gateway %s unreachable: %s", self.settings.target, detail)
        self._reachable = reachable

    def _open_channel(self) -> aio.Channel:
        credentials = self._credentials.channel_credentials()
        options = [("grpc.max_receive_message_length", 4 * 1024 * 1024),
                   ("grpc.initial_reconnect_backoff_ms", 1000), ("grpc.max_reconnect_backoff_ms", 120_000)]
        return (aio.secure_channel(self.settings.target, credentials, options=options) if credentials
                else aio.insecure_channel(self.settings.target, options=options))

    async def _link_loop(self) -> None:
        generation = self._credentials.generation()
        channel = self._open_channel()
        stub: reporting_pb2_grpc.AgentReportingAsyncStub = reporting_pb2_grpc.AgentReportingStub(channel)
        next_beat = 0.0
        try:
            await asyncio.sleep(self._backoff.first_delay())
            while True:
                if self._credentials.generation() != generation:  # renewed certificate: new TLS session
                    generation = self._credentials.generation()
                    await channel.close()
                    channel = self._open_channel()
                    stub = reporting_pb2_grpc.AgentReportingStub(channel)
                try:
                    if time.monotonic() >= next_beat:
                        await self._heartbeat(stub)
                        next_beat = time.monotonic() + self.settings.heartbeat_interval
                    entries = await self._run_blocking(self._outbox.pending, self.settings.batch_entries,
                                                       self.settings.batch_bytes)
                    if entries:
                        await self._send(stub, entries)
                    self._set_reachable(True)
                    self._backoff.reset()
                    if entries:
                        continue
                    self._appended.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._appended.wait(), max(0.0, next_beat - time.monotonic()))
                except aio.AioRpcError as exc:
                    code = exc.code()
                    self.metrics.failures.labels(code.name).inc()
                    self._set_reachable(False, code.name)
                    delay = self._backoff.next_delay()
                    for key, value in exc.trailing_metadata() or ():
                        if key == _RETRY_AFTER_KEY and isinstance(value, str) and value.isdigit():
                            delay = max(delay, int(value) / 1000)
                    await asyncio.sleep(delay)
                except (OSError, sqlite3.Error) as exc:  # outbox trouble: retry later, never die
                    log.warning("uplink outbox error: %s", type(exc).__name__)
                    await asyncio.sleep(self._backoff.next_delay())
        finally:
            await channel.close()

    async def run(self) -> None:
        """Run until cancelled."""
        self._loop = asyncio.get_running_loop()
        remove = self._source.add_change_listener(self._on_change)
        try:
            self._gauge()
            await self.append_snapshot()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._collect_loop(), name="uplink-collect")
                group.create_task(self._link_loop(), name="uplink-link")
        finally:
            remove()
