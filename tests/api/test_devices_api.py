"""The device API through a real grpcio channel on a unix socket."""

from __future__ import annotations

import asyncio
import os
import stat

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agent.client import AgentClient
from agent.daemon import RunningAgent
from agent.domain.device import DeviceFamily
from centre.agent.v1 import agent_pb2
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as dpb
from centre.agent.v1 import idcard_pb2 as ipb


async def wait_ready(client: AgentClient, count: int = 5) -> list[cpb.Device]:
    for _ in range(200):
        reply = await client.devices.ListDevices(dpb.ListDevicesRequest())
        ready = [d for d in reply.devices if d.state == cpb.DEVICE_STATE_READY]
        if len(ready) >= count:
            return list(reply.devices)
        await asyncio.sleep(0.05)
    raise AssertionError(f"devices not ready: {reply}")


async def test_every_family_is_listed(client: AgentClient, running: RunningAgent) -> None:
    devices = await wait_ready(client)
    families = {d.family for d in devices}
    assert families == {cpb.DEVICE_FAMILY_IDCARD, cpb.DEVICE_FAMILY_FINGERPRINT, cpb.DEVICE_FAMILY_SCANNER,
                        cpb.DEVICE_FAMILY_PRINTER, cpb.DEVICE_FAMILY_BARCODE}
    only = await client.devices.ListDevices(dpb.ListDevicesRequest(families=[cpb.DEVICE_FAMILY_PRINTER]))
    assert [d.family for d in only.devices] == [cpb.DEVICE_FAMILY_PRINTER]
    mode = stat.S_IMODE(os.stat(running.listen["socket"]).st_mode)
    assert mode == 0o660


async def test_unknown_device_is_not_found(client: AgentClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.devices.GetDevice(dpb.GetDeviceRequest(device_id="printer-000000000000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    trailers = dict(err.value.trailing_metadata() or ())
    assert trailers["centre-error-reason"] == "NOT_FOUND"


async def test_lease_conflict_names_the_holder_and_release_frees(client: AgentClient,
                                                               other_client: AgentClient) -> None:
    devices = await wait_ready(client)
    reader = next(d for d in devices if d.family == cpb.DEVICE_FAMILY_IDCARD)
    lease = await client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=reader.id, ttl_seconds=30))
    assert lease.client_id == "portal-a"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await other_client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=reader.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "portal-a" in (err.value.details() or "")
    # an operation by the other client is refused too
    read = ipb.ReadCardRequest(device=cpb.DeviceRef(device_id=reader.id),
                               mrz=ipb.MrzKey(document_number="X", date_of_birth="900101", date_of_expiry="300101"))
    with pytest.raises(grpc.aio.AioRpcError) as err2:
        await other_client.idcard.ReadCard(read)
    assert err2.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    released = await client.devices.ReleaseDevice(dpb.ReleaseDeviceRequest(lease_id=lease.lease_id))
    assert released.released
    lease_b = await other_client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=reader.id, ttl_seconds=1))
    assert lease_b.client_id == "portal-b"


async def test_expired_lease_is_released(client: AgentClient, other_client: AgentClient) -> None:
    devices = await wait_ready(client)
    printer = next(d for d in devices if d.family == cpb.DEVICE_FAMILY_PRINTER)
    await client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=printer.id, ttl_seconds=1))
    got = await other_client.devices.GetDevice(dpb.GetDeviceRequest(device_id=printer.id))
    assert got.lease_holder == "portal-a"
    for _ in range(100):
        got = await other_client.devices.GetDevice(dpb.GetDeviceRequest(device_id=printer.id))
        if got.lease_holder == "":
            break
        await asyncio.sleep(0.05)
    assert got.lease_holder == ""
    await other_client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=printer.id))


@pytest.mark.parametrize("request_msg", [
    dpb.ClaimDeviceRequest(device_id="", ttl_seconds=5),
    dpb.ClaimDeviceRequest(device_id="x" * 1000),
])
async def test_malformed_requests_are_invalid_argument(client: AgentClient, request_msg: dpb.ClaimDeviceRequest
                                                       ) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.devices.ClaimDevice(request_msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_garbage_bytes_and_oversized_ttl(client: AgentClient, running: RunningAgent) -> None:
    devices = await wait_ready(client)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=devices[0].id, ttl_seconds=10**6))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # raw garbage that is not a protobuf message
    raw = client.channel.unary_unary("/centre.agent.v1.DeviceService/GetDevice",
                                     request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.aio.AioRpcError) as err2:
        await raw(b"\xff\xff\xff\xff\x0f")
    assert err2.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # the daemon is still serving
    assert (await client.agent.GetHealth(agent_pb2.GetHealthRequest())).serving


async def test_event_stream_snapshot_and_lease_events(client: AgentClient, other_client: AgentClient) -> None:
    devices = await wait_ready(client)
    stream = client.devices.WatchEvents(dpb.WatchEventsRequest(initial_snapshot=True))
    snapshot: list[dpb.Event] = [await stream.read() for _ in devices]  # type: ignore[misc]
    assert {e.kind for e in snapshot} == {dpb.EVENT_KIND_DEVICE_ADDED}
    printer = next(d for d in devices if d.family == cpb.DEVICE_FAMILY_PRINTER)
    await other_client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=printer.id))
    event = await asyncio.wait_for(stream.read(), 5)
    assert isinstance(event, dpb.Event)
    assert event.kind == dpb.EVENT_KIND_LEASE_CHANGED
    assert event.attributes["holder"] == "portal-b"
    assert event.seq > snapshot[-1].seq or event.seq >= 1
    stream.cancel()


async def test_client_going_away_mid_stream_frees_its_subscription(client: AgentClient,
                                                                   running: RunningAgent) -> None:
    await wait_ready(client)
    stream = client.devices.WatchEvents(dpb.WatchEventsRequest())
    for _ in range(100):
        if running.runtime.bus.subscriber_count == 1:
            break
        await asyncio.sleep(0.02)
    assert running.runtime.bus.subscriber_count == 1
    stream.cancel()
    for _ in range(100):
        if running.runtime.bus.subscriber_count == 0:
            break
        await asyncio.sleep(0.02)
    assert running.runtime.bus.subscriber_count == 0


async def test_disconnect_mid_operation_releases_the_device(running: RunningAgent) -> None:
    sock = running.listen["socket"]
    async with AgentClient.connect(sock, "quitter") as quitter:
        await wait_ready(quitter)
        scanner_id = running.runtime.registry.resolve("", DeviceFamily.SCANNER)
        from centre.agent.v1 import scanner_pb2 as spb
        stream = quitter.scanner.Scan(spb.ScanRequest(device=cpb.DeviceRef(device_id=scanner_id),
                                                      source=spb.SCAN_SOURCE_ADF, resolution=75))
        await stream.read()  # the job is running
        stream.cancel()
    for _ in range(100):
        if running.runtime.registry.info(scanner_id).state.value == "ready":
            break
        await asyncio.sleep(0.02)
    assert running.runtime.registry.info(scanner_id).state.value == "ready"


async def test_health_checking_and_reflection(client: AgentClient) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="centre.agent.v1.DeviceService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    responses = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = set()
    async for resp in responses:
        names = {s.name for s in resp.list_services_response.service}
        break
    assert {"centre.agent.v1.DeviceService", "centre.agent.v1.IdCardService", "grpc.health.v1.Health"} <= names


async def test_version_and_config_summary(client: AgentClient, running: RunningAgent) -> None:
    version = await client.agent.GetVersion(agent_pb2.GetVersionRequest())
    assert version.api_version == "centre.agent.v1"
    summary = await client.agent.GetConfigSummary(agent_pb2.GetConfigSummaryRequest())
    assert summary.simulate
    assert summary.socket_path == running.listen["socket"]
    assert len(summary.config_sha256) == 64


async def test_oversized_request_is_invalid_argument(client: AgentClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.devices.GetDevice(dpb.GetDeviceRequest(device_id="x" * (2 << 20)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exceeds" in (err.value.details() or "")


async def test_card_presence_follows_the_simulated_card_through_the_api(client: AgentClient,
                                                                        running: RunningAgent) -> None:
    from agent.simulator.idcard import SimulatedIdCardReader

    devices = await wait_ready(client)
    listed = next(d for d in devices if d.family == cpb.DEVICE_FAMILY_IDCARD)
    assert listed.card_present  # the simulated reader starts with its card
    assert not any(d.card_present for d in devices if d.family != cpb.DEVICE_FAMILY_IDCARD)
    reader = running.runtime.registry.device(listed.id, DeviceFamily.IDCARD)
    assert isinstance(reader, SimulatedIdCardReader)

    stream = client.devices.WatchEvents(dpb.WatchEventsRequest(device_ids=[listed.id]))
    lease = await client.devices.ClaimDevice(dpb.ClaimDeviceRequest(device_id=listed.id, ttl_seconds=30))
    subscribed = await asyncio.wait_for(stream.read(), 5)  # the lease event says the stream is live
    assert isinstance(subscribed, dpb.Event)
    assert subscribed.kind == dpb.EVENT_KIND_LEASE_CHANGED
    reader.remove_card()
    removed, changed = [await asyncio.wait_for(stream.read(), 5) for _ in range(2)]
    assert isinstance(removed, dpb.Event)
    assert isinstance(changed, dpb.Event)
    assert removed.kind == dpb.EVENT_KIND_CARD_REMOVED
    assert not removed.device.card_present
    assert changed.kind == dpb.EVENT_KIND_DEVICE_STATE_CHANGED
    assert not changed.device.card_present
    stream.cancel()
    await client.devices.ReleaseDevice(dpb.ReleaseDeviceRequest(lease_id=lease.lease_id))
    assert not (await client.devices.GetDevice(dpb.GetDeviceRequest(device_id=listed.id))).card_present

    key = ipb.MrzKey(document_number="203004567", date_of_birth="900115", date_of_expiry="300115")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.idcard.ReadCard(ipb.ReadCardRequest(mrz=key, skip_face=True))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(err.value.trailing_metadata() or ())["centre-error-reason"] == "NO_CARD"
    reader.insert_card()
    assert (await client.devices.GetDevice(dpb.GetDeviceRequest(device_id=listed.id))).card_present
