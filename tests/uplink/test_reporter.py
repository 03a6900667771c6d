"""The reporter against a real gateway process over gRPC on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import httpx
import pytest

from agent.domain.device import Condition, DeviceInfo, DeviceState, Severity
from agent.uplink.backoff import BackoffPolicy
from agent.uplink.credentials import StaticTokenCredentials
from agent.uplink.outbox import Outbox, OutboxLimits
from agent.uplink.reporter import AgentFacts, HealthReporter, ReporterSettings, UplinkMetrics
from tests.gateway.client import GatewayClient
from tests.gateway.gateway_process import AGENT_TOKEN, GatewayProcess
from tests.uplink.health_source import FakeHealthSource, make_printer

FACTS = AgentFacts(agent_id="hn-bd-001-pc07", province="HN", centre="HN-BD-001", version="0.1.0",
                   host="pc07", config_hash="c0ffee")
FAST = BackoffPolicy(initial=0.05, multiplier=1.6, jitter=0.2, maximum=0.3, first_delay_max=0.05)


def settings(target: str) -> ReporterSettings:
    return ReporterSettings(target=target, heartbeat_interval=0.3, diff_interval=0.05, snapshot_interval=3600,
                            call_timeout=2.0, batch_entries=20, backoff=FAST)


@contextlib.asynccontextmanager
async def running(reporter: HealthReporter) -> AsyncIterator[HealthReporter]:
    task = asyncio.create_task(reporter.run())
    try:
        yield reporter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


async def transitions(gw: GatewayProcess, device_id: str) -> list[str]:
    from gateway.store import open_store
    store = open_store(gw.backend, path=str(gw.db_path), dsn=gw.dsn)
    await store.open()
    try:
        return [t.state for t in await store.transitions(FACTS.agent_id, device_id)]
    finally:
        await store.close()


async def test_reports_devices_and_heartbeats(gateway: GatewayProcess, tmp_path: Path) -> None:
    source = FakeHealthSource([make_printer("p1"), make_printer("p2", toner=4)])
    outbox = Outbox(tmp_path / "outbox.db")
    reporter = HealthReporter(source, FACTS, StaticTokenCredentials(AGENT_TOKEN), outbox, settings(gateway.target))
    client = GatewayClient(gateway.target)
    async with running(reporter):
        await eventually(lambda: len(outbox) == 0 and bool(client.agents()))
        [agent] = client.agents()
        assert sorted(d.device_id for d in agent.devices) == ["p1", "p2"]
        assert agent.health.host == "pc07"
        source.set_state("p1", DeviceState.ERROR)
        await eventually(lambda: any(d.state == 4 for d in client.agents()[0].devices))
        source.remove("p2")  # device set changed: a snapshot removes it
        await eventually(lambda: [d.device_id for d in client.agents()[0].devices] == ["p1"])
    client.close()
    assert reporter.metrics.connected._value.get() == 1


async def test_outage_every_transition_arrives_once_in_order(
        gateway: GatewayProcess, tmp_path: Path) -> None:
    source = FakeHealthSource([make_printer("p1")])
    outbox = Outbox(tmp_path / "outbox.db")
    reporter = HealthReporter(source, FACTS, StaticTokenCredentials(AGENT_TOKEN), outbox, settings(gateway.target))
    states = [DeviceState.ERROR, DeviceState.READY, DeviceState.BUSY, DeviceState.READY, DeviceState.ERROR,
              DeviceState.GONE, DeviceState.PRESENT, DeviceState.READY]
    async with running(reporter):
        await eventually(lambda: len(outbox) == 0 and outbox.last_seq >= 1)
        gateway.stop()
        for state in states:
            source.set_state("p1", state)
            await asyncio.sleep(0.12)  # longer than the diff interval: each change is its own entry
        await eventually(lambda: len(outbox) >= len(states))
        await eventually(lambda: reporter.metrics.failures._metrics != {})
        gateway.start()
        await eventually(lambda: len(outbox) == 0)
    got = await transitions(gateway, "p1")
    assert got == ["ready"] + [s.value for s in states]
    assert outbox.dropped() == {}


async def test_bounded_buffer_drops_and_counts_then_converges(
        gateway: GatewayProcess, tmp_path: Path) -> None:
    devices = [make_printer(f"p{i}") for i in range(6)]
    source = FakeHealthSource(devices)
    metrics = UplinkMetrics()
    outbox = Outbox(tmp_path / "outbox.db", OutboxLimits(max_bytes=2048))
    reporter = HealthReporter(source, FACTS, StaticTokenCredentials(AGENT_TOKEN), outbox, settings(gateway.target),
                              metrics=metrics)
    client = GatewayClient(gateway.target)
    async with running(reporter):
        await eventually(lambda: len(outbox) == 0 and outbox.last_seq >= 1)
        gateway.stop()
        for round_ in range(12):
            for i in range(6):
                source.set_state(f"p{i}", DeviceState.ERROR if (round_ + i) % 2 else DeviceState.READY)
            await asyncio.sleep(0.07)
            assert outbox.size_bytes <= 2048
        final = {f"p{i}": DeviceState.BUSY if i % 2 else DeviceState.ERROR for i in range(6)}
        for device_id, state in final.items():
            source.set_state(device_id, state)
        await asyncio.sleep(0.2)
        assert outbox.size_bytes <= 2048
        dropped = sum(s.value for m in metrics.dropped.collect() for s in m.samples if s.name.endswith("_total"))
        assert dropped > 0
        assert dropped == sum(outbox.dropped().values())
        gateway.start()
        expect = {k: {"busy": 3, "error": 4}[v.value] for k, v in final.items()}
        await eventually(lambda: {d.device_id: d.state for a in client.agents() for d in a.devices} == expect)
    client.close()


async def test_privacy_canary_never_reaches_gateway(gateway: GatewayProcess, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    canary = "NGUYEN VAN CANARY 079203001234"
    device = make_printer("p1", DeviceState.ERROR, serial=canary, last_error=f"card of {canary} stuck")
    import dataclasses
    device = dataclasses.replace(device, lease_holder=canary, health=dataclasses.replace(
        device.health, conditions=(Condition("media-jam", Severity.ERROR, message=canary),),
        counters={"pages_printed": 1, canary: 2}))
    source = FakeHealthSource([device])
    outbox = Outbox(tmp_path / "outbox.db")
    reporter = HealthReporter(source, FACTS, StaticTokenCredentials(AGENT_TOKEN), outbox, settings(gateway.target))
    client = GatewayClient(gateway.target)
    caplog.set_level(logging.DEBUG)
    async with running(reporter):
        await eventually(lambda: len(outbox) == 0 and bool(client.agents()))
        metrics = httpx.get(gateway.http + "/metrics", timeout=10, trust_env=False).text
        api = httpx.get(gateway.http + "/api/agents", timeout=10, trust_env=False).text
    client.close()
    assert canary not in metrics
    assert canary not in api
    assert canary not in caplog.text
    gateway.stop()
    assert canary.encode() not in gateway.log_path.read_bytes()
    if gateway.backend == "sqlite":
        for path in gateway.db_path.parent.glob(gateway.db_path.name + "*"):
            assert canary.encode() not in path.read_bytes(), path
    else:
        import psycopg
        with psycopg.connect(gateway.dsn) as conn:
            for table in ("agents", "devices", "transitions"):
                dump = str(conn.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608
                assert canary not in dump
                assert "p1" in dump or table == "agents"


class _BrokenSource(FakeHealthSource):
    def __init__(self) -> None:
        super().__init__([make_printer("p1")])
        self.broken = False

    def devices(self) -> Sequence[DeviceInfo]:
        if self.broken:
            raise RuntimeError("driver blew up")
        return super().devices()


async def test_reporter_survives_a_failing_health_source(gateway: GatewayProcess, tmp_path: Path) -> None:
    source = _BrokenSource()
    outbox = Outbox(tmp_path / "outbox.db")
    reporter = HealthReporter(source, FACTS, StaticTokenCredentials(AGENT_TOKEN), outbox, settings(gateway.target))
    client = GatewayClient(gateway.target)
    async with running(reporter):
        await eventually(lambda: len(outbox) == 0 and bool(client.agents()))
        source.broken = True
        source.set_state("p1", DeviceState.ERROR)  # wakes the collector, which now fails
        await asyncio.sleep(0.3)
        source.broken = False
        source.set_state("p1", DeviceState.BUSY)
        await eventually(lambda: client.agents()[0].devices[0].state == 3)
    client.close()
