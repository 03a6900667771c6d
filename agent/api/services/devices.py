"""DeviceService: registry, leases, the multiplexed event stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from google.protobuf.descriptor import ServiceDescriptor

from agent.api import convert
from agent.api.call import CallInfo
from agent.core.runtime import AgentRuntime
from agent.domain.events import Event, EventKind
from agent.errors import InvalidRequestError
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as pb

HEARTBEAT_SECONDS = 15.0


def lease_pb(lease: object) -> pb.Lease:
    msg = pb.Lease(lease_id=lease.lease_id, device_id=lease.device_id,  # type: ignore[attr-defined]
                   client_id=lease.client_id)  # type: ignore[attr-defined]
    msg.expires_at.CopyFrom(convert.timestamp(lease.expires_at))  # type: ignore[attr-defined]
    return msg


class DeviceServiceCore:
    descriptor: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["DeviceService"]

    def __init__(self, runtime: AgentRuntime, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self._rt = runtime
        self._heartbeat = heartbeat_seconds

    async def ListDevices(self, request: pb.ListDevicesRequest, call: CallInfo) -> pb.ListDevicesResponse:
        families = convert.families_from_pb(request.families)
        infos = self._rt.registry.list(families, include_gone=request.include_gone)
        return pb.ListDevicesResponse(devices=[convert.device_pb(i) for i in infos])

    async def GetDevice(self, request: pb.GetDeviceRequest, call: CallInfo) -> cpb.Device:
        return convert.device_pb(self._rt.registry.info(request.device_id))

    async def WatchEvents(self, request: pb.WatchEventsRequest, call: CallInfo) -> AsyncIterator[pb.Event]:
        families = set(convert.families_from_pb(request.families))
        device_ids = set(request.device_ids)
        if len(device_ids) > 256:
            raise InvalidRequestError("at most 256 device_ids")

        def accepts(event: Event) -> bool:
            if device_ids and event.device_id not in device_ids:
                return False
            return not families or event.device is None or event.device.family in families

        initial = []
        if request.initial_snapshot:
            for info in self._rt.registry.list(families):
                if not device_ids or info.id in device_ids:
                    initial.append(Event(kind=EventKind.DEVICE_ADDED, device_id=info.id, timestamp=time.time(),
                                         seq=self._rt.bus.last_seq, device=info))
        async for event in self._rt.bus.subscribe(accepts, initial, idle_seconds=self._heartbeat):
            yield convert.event_pb(event)

    async def ClaimDevice(self, request: pb.ClaimDeviceRequest, call: CallInfo) -> pb.Lease:
        if len(request.request_id) > 128:
            raise InvalidRequestError("request_id longer than 128 characters")
        lease = self._rt.leases.claim(request.device_id, call.client_id, request.ttl_seconds, request.request_id)
        return lease_pb(lease)

    async def RenewLease(self, request: pb.RenewLeaseRequest, call: CallInfo) -> pb.Lease:
        return lease_pb(self._rt.leases.renew(request.lease_id, call.client_id, request.ttl_seconds))

    async def ReleaseDevice(self, request: pb.ReleaseDeviceRequest, call: CallInfo) -> pb.ReleaseDeviceResponse:
        return pb.ReleaseDeviceResponse(released=self._rt.leases.release(request.lease_id, call.client_id))
