"""ScannerService: capabilities and scan jobs streaming pages and the PDF."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from google.protobuf.descriptor import ServiceDescriptor

from agent.api import convert
from agent.api.call import CallInfo
from agent.api.services.targeting import exclusive, shared
from agent.core.jobs import new_job_id
from agent.core.runtime import AgentRuntime
from agent.documents.pdf_stream import PdfStreamWriter
from agent.domain.device import DeviceFamily
from agent.domain.scanner import ScannedPage, ScannerCapabilities, ScanSettings
from agent.drivers.base import Scanner
from agent.errors import AgentError, InvalidRequestError, OperationCancelledError
from centre.agent.v1 import scanner_pb2 as pb

PDF_CHUNK = 256 * 1024


def validate_settings(settings: ScanSettings, caps: ScannerCapabilities) -> None:
    if settings.source not in caps.sources:
        raise InvalidRequestError(f"source {settings.source.value} not available "
                                  f"(scanner has {', '.join(s.value for s in caps.sources)})")
    if settings.resolution not in caps.resolutions:
        raise InvalidRequestError(f"resolution {settings.resolution} not supported "
                                  f"(scanner has {', '.join(map(str, caps.resolutions))})")
    if settings.color_mode not in caps.color_modes:
        raise InvalidRequestError(f"colour mode {settings.color_mode.value} not supported")
    if not (0 < settings.width_mm <= caps.max_width_mm + 0.5 and 0 < settings.height_mm <= caps.max_height_mm + 0.5):
        raise InvalidRequestError(f"scan area {settings.width_mm}x{settings.height_mm} mm exceeds the scanner's "
                                  f"{caps.max_width_mm}x{caps.max_height_mm} mm")


def _status(job_id: str, state: pb.JobState.ValueType, pages: int, reason: str = "", message: str = "",
            partial: bool = False) -> pb.ScanUpdate:
    return pb.ScanUpdate(job_id=job_id, status=pb.ScanJobStatus(state=state, pages_done=pages, reason=reason,
                                                                message=message, partial_discarded=partial))


class ScannerServiceCore:
    descriptor: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["ScannerService"]

    def __init__(self, runtime: AgentRuntime) -> None:
        self._rt = runtime
        self._cancels: dict[str, asyncio.Event] = {}

    async def GetScannerCapabilities(self, request: pb.GetScannerCapabilitiesRequest,
                                     call: CallInfo) -> pb.ScannerCapabilities:
        _, scanner = shared(self._rt, request.device, DeviceFamily.SCANNER, Scanner, call)
        return convert.scanner_capabilities_pb(scanner.scanner_capabilities())

    async def CancelScan(self, request: pb.CancelScanRequest, call: CallInfo) -> pb.CancelScanResponse:
        event = self._cancels.get(request.job_id)
        if event is None:
            return pb.CancelScanResponse(cancelled=False)
        event.set()
        return pb.CancelScanResponse(cancelled=True)

    async def Scan(self, request: pb.ScanRequest, call: CallInfo) -> AsyncIterator[pb.ScanUpdate]:
        settings = convert.scan_settings_from_pb(request)
        want_pages = request.page_format != pb.PAGE_IMAGE_FORMAT_UNSPECIFIED
        async with exclusive(self._rt, request.device, DeviceFamily.SCANNER, Scanner, call) as (_, scanner):
            validate_settings(settings, scanner.scanner_capabilities())
            job_id = new_job_id("scan")
            cancel = self._cancels[job_id] = asyncio.Event()
            # The PDF is written page by page as the pages arrive (agent.documents.pdf_stream):
            # memory stays flat however many pages the feeder holds, and no page is kept.
            writer = PdfStreamWriter() if request.pdf else None
            count = 0
            try:
                yield _status(job_id, pb.JOB_STATE_RUNNING, 0)
                async with contextlib.aclosing(scanner.scan(settings)) as stream:  # type: ignore[type-var]
                    while True:
                        page = await self._next_page(stream, cancel)
                        if page is None:
                            break
                        count += 1
                        if want_pages:
                            yield pb.ScanUpdate(job_id=job_id, page=pb.ScannedPage(
                                index=page.index, mime_type=page.format.value, data=page.data, width=page.width,
                                height=page.height, resolution=page.resolution))
                        if writer is not None:
                            parts = await asyncio.get_running_loop().run_in_executor(
                                self._rt.executor, _pdf_page, writer, page)
                            del page
                            for chunk in _pdf_messages(parts):
                                yield pb.ScanUpdate(job_id=job_id, pdf_chunk=chunk)
            except OperationCancelledError:
                yield _status(job_id, pb.JOB_STATE_CANCELLED, count, "CANCELLED", "cancelled by a client")
                return
            except AgentError as exc:
                yield _status(job_id, pb.JOB_STATE_FAILED, count, exc.reason, exc.message,
                              partial=exc.reason == "DEVICE_GONE")
                raise
            finally:
                self._cancels.pop(job_id, None)
            digest = ""
            size = 0
            if writer is not None and writer.pages:
                for chunk in _pdf_messages(writer.finish()):
                    yield pb.ScanUpdate(job_id=job_id, pdf_chunk=chunk)
                digest, size = writer.sha256, writer.size
            yield _status(job_id, pb.JOB_STATE_DONE, count)
            yield pb.ScanUpdate(job_id=job_id, completed=pb.ScanCompleted(pages=count, sha256=digest, pdf_size=size))

    async def _next_page(self, stream: AsyncIterator[ScannedPage], cancel: asyncio.Event) -> ScannedPage | None:
        nxt = asyncio.ensure_future(anext(stream, None))
        waiter = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({nxt, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # the call went away: stop the driver's scan inside its own task, else the generator
            # stays suspended there (device busy, job left open on the scanner)
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)
            raise
        finally:
            waiter.cancel()
        if nxt.done():
            return nxt.result()
        nxt.cancel()
        await asyncio.gather(nxt, return_exceptions=True)
        raise OperationCancelledError("scan cancelled")


def _pdf_page(writer: PdfStreamWriter, page: ScannedPage) -> list[bytes]:
    """The PDF bytes for one page (the file header comes with the first). Runs in the executor:
    JPEG pages are passed through, others are Flate-compressed."""
    head = [] if writer.pages else writer.begin()
    return head + writer.add_page(page)


def _pdf_messages(parts: list[bytes]) -> Iterator[bytes]:
    """Regroup the writer's pieces into messages of at most PDF_CHUNK bytes, in order."""
    pending = bytearray()
    for part in parts:
        view = memoryview(part)
        while view:
            take = PDF_CHUNK - len(pending)
            pending += view[:take]
            view = view[take:]
            if len(pending) == PDF_CHUNK:
                yield bytes(pending)
                pending.clear()
    if pending:
        yield bytes(pending)
