"""Many agents reconnecting at once: the gateway sheds with RESOURCE_EXHAUSTED, nobody gives up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path

from agent.uplink.credentials import StaticTokenCredentials
from agent.uplink.outbox import Outbox
from agent.uplink.reporter import HealthReporter
from tests.gateway.client import GatewayClient
from tests.gateway.gateway_process import AGENT_TOKEN, GatewayProcess
from tests.uplink.health_source import FakeHealthSource, make_printer
from tests.uplink.test_reporter import FACTS, eventually, settings


async def test_storm_of_agents_all_get_through_admission(
        gateway_factory: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    # 40 agents arrive within 50 ms; the gateway admits 20 calls/s with a burst of 5
    gw = gateway_factory(admission_rate=20.0, admission_burst=5.0)
    reporters = []
    for i in range(40):
        facts = dataclasses.replace(FACTS, agent_id=f"storm-{i:03d}", centre=f"HN-S{i % 4}")
        reporters.append(HealthReporter(FakeHealthSource([make_printer(f"p{i}")]), facts,
                                        StaticTokenCredentials(AGENT_TOKEN), Outbox(tmp_path / f"o{i}.db"),
                                        dataclasses.replace(settings(gw.target), heartbeat_interval=5.0)))
    tasks = [asyncio.create_task(r.run()) for r in reporters]
    client = GatewayClient(gw.target)
    try:
        await eventually(lambda: sum(len(a.devices) for a in client.agents()) == 40, timeout=90)
        assert all(not t.done() for t in tasks)  # every reporter still running
        codes = {code for r in reporters for m in r.metrics.failures.collect() for s in m.samples
                 if s.name.endswith("_total") and s.value > 0 for code in [s.labels["code"]]}
        assert codes == {"RESOURCE_EXHAUSTED"}  # shed, never failed otherwise
    finally:
        client.close()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
