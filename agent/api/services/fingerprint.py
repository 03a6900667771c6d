"""FingerprintService: capture, enrol, verify, identify. Nothing is kept after the reply."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

from google.protobuf.descriptor import ServiceDescriptor

from agent.api import convert
from agent.api.call import CallInfo
from agent.api.services.targeting import exclusive, shared
from agent.core.runtime import AgentRuntime
from agent.domain.device import DeviceFamily
from agent.domain.fingerprint import EnrollProgress, FingerprintImage, FingerprintTemplate
from agent.drivers.base import FingerprintSensor
from agent.errors import InvalidRequestError
from centre.agent.v1 import fingerprint_pb2 as pb

MAX_IDENTIFY = 1000


def _timeout(ms: int) -> float:
    if ms > 300_000:
        raise InvalidRequestError("timeout_ms must be at most 300000")
    return ms / 1000 if ms else 30.0


def _png(image: FingerprintImage) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("L", (image.width, image.height), image.pixels).save(buf, "PNG")
    return buf.getvalue()


class FingerprintServiceCore:
    descriptor: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["FingerprintService"]

    def __init__(self, runtime: AgentRuntime) -> None:
        self._rt = runtime

    async def GetFingerprintCapabilities(self, request: pb.GetFingerprintCapabilitiesRequest,
                                         call: CallInfo) -> pb.FingerprintCapabilities:
        _, sensor = shared(self._rt, request.device, DeviceFamily.FINGERPRINT, FingerprintSensor, call)
        c = sensor.fingerprint_capabilities()
        return pb.FingerprintCapabilities(
            template_formats=[convert.TEMPLATE_TO_PB[f] for f in c.template_formats],
            enroll_stages=c.enroll_stages, can_capture_image=c.can_capture_image, can_identify=c.can_identify,
            max_identify_templates=c.max_identify_templates, image_width=c.image_width,
            image_height=c.image_height)

    async def Capture(self, request: pb.CaptureRequest, call: CallInfo) -> pb.CaptureResponse:
        timeout = _timeout(request.timeout_ms)
        async with exclusive(self._rt, request.device, DeviceFamily.FINGERPRINT, FingerprintSensor, call) as (_, s):
            image = await s.capture(timeout)
        png = await asyncio.get_running_loop().run_in_executor(self._rt.executor, _png, image)
        return pb.CaptureResponse(width=image.width, height=image.height, pixels=image.pixels,
                                  resolution_dpi=image.resolution_dpi, quality=image.quality, png=png)

    async def Enroll(self, request: pb.EnrollRequest, call: CallInfo) -> AsyncIterator[pb.EnrollUpdate]:
        timeout = _timeout(request.timeout_ms)
        progress: asyncio.Queue[EnrollProgress | FingerprintTemplate] = asyncio.Queue()
        async with exclusive(self._rt, request.device, DeviceFamily.FINGERPRINT, FingerprintSensor, call) as (_, s):
            task = asyncio.ensure_future(s.enroll(progress.put_nowait, timeout))
            try:
                while not task.done() or not progress.empty():
                    getter = asyncio.ensure_future(progress.get())
                    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    if getter.done():
                        item = getter.result()
                        assert isinstance(item, EnrollProgress)
                        yield pb.EnrollUpdate(progress=pb.EnrollProgress(stage=item.stage, stages=item.stages,
                                                                         retry_reason=item.retry_reason))
                    else:
                        getter.cancel()
                template = task.result()
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
        if request.finger and not template.finger:
            template = FingerprintTemplate(template.format, template.data, request.finger)
        yield pb.EnrollUpdate(template=convert.template_pb(template))

    async def Verify(self, request: pb.VerifyRequest, call: CallInfo) -> pb.VerifyResponse:
        template = convert.template_from_pb(request.template)
        timeout = _timeout(request.timeout_ms)
        async with exclusive(self._rt, request.device, DeviceFamily.FINGERPRINT, FingerprintSensor, call) as (_, s):
            result = await s.verify(template, timeout)
        return pb.VerifyResponse(matched=result.matched, score=result.score)

    async def Identify(self, request: pb.IdentifyRequest, call: CallInfo) -> pb.IdentifyResponse:
        if not request.templates or len(request.templates) > MAX_IDENTIFY:
            raise InvalidRequestError(f"give 1 to {MAX_IDENTIFY} templates")
        templates = [convert.template_from_pb(t) for t in request.templates]
        timeout = _timeout(request.timeout_ms)
        async with exclusive(self._rt, request.device, DeviceFamily.FINGERPRINT, FingerprintSensor, call) as (_, s):
            result = await s.identify(templates, timeout)
        return pb.IdentifyResponse(index=result.index, score=result.score)
