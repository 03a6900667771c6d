"""BarcodeService: scans from barcode scanners, to local clients only."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf.descriptor import ServiceDescriptor

from agent.api import convert
from agent.api.call import CallInfo
from agent.api.services.targeting import resolve
from agent.core.runtime import AgentRuntime
from agent.domain.device import DeviceFamily
from agent.domain.events import Event, EventKind
from centre.agent.v1 import barcode_pb2 as pb
from centre.agent.v1 import devices_pb2 as dpb


class BarcodeServiceCore:
    descriptor: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["BarcodeService"]

    def __init__(self, runtime: AgentRuntime) -> None:
        self._rt = runtime

    async def WatchScans(self, request: pb.WatchScansRequest, call: CallInfo) -> AsyncIterator[dpb.BarcodeScanned]:
        device_id = resolve(self._rt, request.device, DeviceFamily.BARCODE, call) if request.device.device_id else ""

        def accepts(event: Event) -> bool:
            return event.kind is EventKind.BARCODE_SCANNED and (not device_id or event.device_id == device_id)

        async for event in self._rt.bus.subscribe(accepts):
            yield convert.barcode_pb(event)
