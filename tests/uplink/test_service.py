from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.core.context import CoreDriverContext, SharedZeroconf
from agent.core.events import EventBus
from agent.core.ids import KnownDeviceStore
from agent.core.registry import DeviceRegistry
from agent.domain.device import DeviceState
from agent.errors import ConfigError
from agent.uplink.service import Uplink, UplinkOptions
from agent.uplink.source import RegistryHealthSource
from tests.core.fakes import ProbeDevice
from tests.gateway.client import GatewayClient
from tests.gateway.gateway_process import AGENT_TOKEN, GatewayProcess
from tests.uplink.test_reporter import eventually


def options(target: str) -> UplinkOptions:
    return UplinkOptions(gateway=target, token=AGENT_TOKEN, agent_id="hn-bd-001-pc09", province="HN",
                         centre="HN-BD-001", heartbeat_seconds=0.3, diff_seconds=0.05, first_delay_max_seconds=0.05)


async def test_uplink_reports_core_registry_to_gateway(gateway: GatewayProcess, tmp_path: Path) -> None:
    bus = EventBus()
    registry = DeviceRegistry(bus, KnownDeviceStore(tmp_path / "known.json"), 0.1)
    ctx = CoreDriverContext("probe", registry, bus, ThreadPoolExecutor(1), SharedZeroconf(["127.0.0.1"]),
                            tmp_path, False)
    metrics = CollectorRegistry()
    uplink = Uplink(options(gateway.target), RegistryHealthSource(registry, bus), tmp_path, version="0.1.0",
                    config_hash="abc", registry=metrics)
    client = GatewayClient(gateway.target)
    uplink.start()
    try:
        device = ProbeDevice("SCANNER-7", ctx)
        ctx.device_found(device)
        await eventually(lambda: any(a.devices for a in client.agents()))
        device.set_state(DeviceState.ERROR)
        ctx.health_changed(device)
        await eventually(lambda: client.agents()[0].devices[0].state == 4)
        assert (tmp_path / "uplink-outbox.db").exists()
        assert b"centre_agent_uplink_connected 1.0" in generate_latest(metrics)
    finally:
        client.close()
        await uplink.stop()
        await registry.close()
        await asyncio.sleep(0)


def test_options_validated_and_token_redacted() -> None:
    with pytest.raises(ConfigError):
        UplinkOptions(gateway="nohost", token="t", agent_id="a", province="P", centre="C")
    with pytest.raises(ConfigError):
        UplinkOptions(gateway="h:1", token="t", agent_id="a", province="P", centre="C", diff_seconds=0)
    assert "secret-token" not in repr(UplinkOptions(gateway="h:1", token="secret-token", agent_id="a",
                                                    province="P", centre="C"))
