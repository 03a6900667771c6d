"""The typed desktop client (agent.client) over the agent's unix socket."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from agent.client import AgentClient, default_target
from centre.agent.v1 import agent_pb2, devices_pb2
from tests.web.conftest import RunningAgent


async def test_version_and_devices(agent: RunningAgent) -> None:
    async with AgentClient.connect(str(agent.socket), client_id="desk-app") as client:
        version = await client.agent.GetVersion(agent_pb2.GetVersionRequest(), timeout=10)
        assert version.api_version == "centre.agent.v1"
        listed = await client.devices.ListDevices(devices_pb2.ListDevicesRequest(), timeout=10)
        assert {d.family for d in listed.devices} >= {1, 2, 3, 4}


async def test_client_id_holds_the_lease(agent: RunningAgent) -> None:
    async with AgentClient.connect(str(agent.socket), client_id="desk-app") as client:
        listed = await client.devices.ListDevices(devices_pb2.ListDevicesRequest(), timeout=10)
        printer = next(d for d in listed.devices if d.id.startswith("printer-"))
        lease = await client.devices.ClaimDevice(devices_pb2.ClaimDeviceRequest(device_id=printer.id, ttl_seconds=30),
                                                 timeout=10)
        try:
            assert lease.client_id == "desk-app"
            async with AgentClient.connect(f"unix:{agent.socket}", client_id="other-app") as other:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await other.devices.ClaimDevice(devices_pb2.ClaimDeviceRequest(device_id=printer.id), timeout=10)
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert dict(err.value.trailing_metadata() or ())["centre-lease-holder"] == "desk-app"
        finally:
            released = await client.devices.ReleaseDevice(devices_pb2.ReleaseDeviceRequest(lease_id=lease.lease_id),
                                                          timeout=10)
            assert released.released


async def test_watch_events_snapshot(agent: RunningAgent) -> None:
    before = asyncio.all_tasks()
    async with AgentClient.connect(str(agent.socket)) as client:
        stream = client.devices.WatchEvents(devices_pb2.WatchEventsRequest(initial_snapshot=True))
        seen: set[str] = set()
        while len(seen) < 5:
            event = await stream.read()
            assert isinstance(event, devices_pb2.Event)
            seen.add(event.device_id)
        stream.cancel()
        assert await stream.code() == grpc.StatusCode.CANCELLED
        assert any(s.startswith("idcard-") for s in seen)
    # grpcio finishes a cancelled call's bookkeeping task a moment later, from its poller thread
    ours = asyncio.all_tasks() - before - {asyncio.current_task()}
    if ours:
        await asyncio.wait(ours, timeout=10)


def test_default_target_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTRE_AGENT_SOCKET", "/tmp/x/agent.sock")
    assert default_target() == "unix:/tmp/x/agent.sock"
    monkeypatch.setenv("CENTRE_AGENT_SOCKET", "unix:/run/a.sock")
    assert default_target() == "unix:/run/a.sock"
