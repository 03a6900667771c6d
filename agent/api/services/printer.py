"""PrinterService: capabilities, status, queued jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf.descriptor import ServiceDescriptor

from agent.api import convert
from agent.api.call import CallInfo
from agent.api.services.targeting import resolve, shared
from agent.core.printing import PrintJobView
from agent.core.runtime import AgentRuntime
from agent.domain.device import DeviceFamily
from agent.domain.printer import PrintDocument
from agent.drivers.base import Printer
from agent.errors import InvalidRequestError
from centre.agent.v1 import printer_pb2 as pb

MAX_DOCUMENT = 64 * 1024 * 1024
FORMATS = ("application/pdf", "image/jpeg", "image/png", "image/pwg-raster", "image/urf", "text/plain",
           "application/vnd.escpos")


def job_pb(job: PrintJobView) -> pb.PrintJob:
    return pb.PrintJob(job_id=job.job_id, device_id=job.device_id, state=convert.PRINT_STATE_TO_PB[job.state],
                       reasons=list(job.reasons), printer_job_id=job.printer_job_id,
                       pages_printed=job.pages_printed, client_id=job.client_id,
                       queue_position=job.queue_position, message=job.message)


class PrinterServiceCore:
    descriptor: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["PrinterService"]

    def __init__(self, runtime: AgentRuntime) -> None:
        self._rt = runtime

    async def GetPrinterCapabilities(self, request: pb.GetPrinterCapabilitiesRequest,
                                     call: CallInfo) -> pb.PrinterCapabilities:
        _, printer = shared(self._rt, request.device, DeviceFamily.PRINTER, Printer, call)
        return convert.printer_capabilities_pb(printer.printer_capabilities())

    async def GetPrinterStatus(self, request: pb.GetPrinterStatusRequest, call: CallInfo) -> pb.PrinterStatus:
        _, printer = shared(self._rt, request.device, DeviceFamily.PRINTER, Printer, call)
        return convert.printer_status_pb(await printer.printer_status())

    async def Print(self, request: pb.PrintRequest, call: CallInfo) -> pb.PrintJob:
        if not request.document:
            raise InvalidRequestError("document is empty")
        if len(request.document) > MAX_DOCUMENT:
            raise InvalidRequestError("document larger than 64 MiB")
        if request.mime_type not in FORMATS:
            raise InvalidRequestError(f"mime_type must be one of {', '.join(FORMATS)}")
        if request.copies > 999 or len(request.name) > 255 or len(request.request_id) > 128:
            raise InvalidRequestError("copies, name or request_id out of range")
        device_id = resolve(self._rt, request.device, DeviceFamily.PRINTER, call)
        self._rt.leases.check(device_id, call.client_id, request.device.lease_id)
        document = PrintDocument(data=bytes(request.document), mime_type=request.mime_type,
                                 name=request.name or "document", copies=request.copies or 1,
                                 duplex=request.duplex, media=request.media)
        return job_pb(self._rt.printers.submit(device_id, call.client_id, document, request.request_id))

    async def WatchPrintJob(self, request: pb.WatchPrintJobRequest, call: CallInfo) -> AsyncIterator[pb.PrintJob]:
        async for job in self._rt.printers.watch(request.job_id):
            yield job_pb(job)

    async def CancelPrintJob(self, request: pb.CancelPrintJobRequest, call: CallInfo) -> pb.PrintJob:
        return job_pb(await self._rt.printers.cancel(request.job_id, call.client_id))

    async def ListPrintJobs(self, request: pb.ListPrintJobsRequest, call: CallInfo) -> pb.ListPrintJobsResponse:
        device_id = request.device.device_id
        if device_id:
            self._rt.registry.info(device_id)
        return pb.ListPrintJobsResponse(jobs=[job_pb(j) for j in self._rt.printers.list(device_id)])
