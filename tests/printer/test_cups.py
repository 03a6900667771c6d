"""The CUPS backend against a hand-started cupsd whose queue prints to ippeveprinter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.domain.device import Severity
from agent.domain.printer import PrintDocument, PrinterState, PrintJobState
from agent.drivers.printer.cups_backend import CupsBackend, CupsPrinter
from agent.errors import InvalidRequestError, NotFoundError
from tests.printer.context import PrinterTestContext
from tests.printer.documents import one_page_pdf
from tests.printer.peers import CupsDaemon, IppEvePrinter


@pytest.fixture
async def queue(cupsd: CupsDaemon, ippeve: IppEvePrinter,
                ctx: PrinterTestContext) -> AsyncIterator[CupsPrinter]:
    backend = CupsBackend(ctx, {"server": cupsd.server, "poll_interval": 0.2})
    await backend.start()
    try:
        await ctx.wait_for(lambda: bool(ctx.found))
        device = ctx.found[0]
        assert isinstance(device, CupsPrinter)
        await device.open()
        yield device
    finally:
        await backend.stop()


async def finish(printer: CupsPrinter, job_id: str) -> PrintJobState:
    async with asyncio.timeout(60):
        while True:
            status = await printer.job_status(job_id)
            if status.state.terminal:
                return status.state
            await asyncio.sleep(printer.job_poll_interval)


async def test_cups_queue_prints_a_pdf(queue: CupsPrinter, ippeve: IppEvePrinter) -> None:
    assert queue.descriptor.address == "counter"
    assert queue.descriptor.connection == "cups"
    assert "application/pdf" in queue.printer_capabilities().document_formats
    status = await queue.printer_status()
    assert status.state in (PrinterState.IDLE, PrinterState.PROCESSING)
    job_id = await queue.submit(PrintDocument(one_page_pdf(), "application/pdf", name="slip"))
    assert await finish(queue, job_id) == PrintJobState.COMPLETED
    # CUPS does not poll an idle printer: the printer's reasons arrive while a job runs
    ippeve.set_supplies(toner=5)
    job_id = await queue.submit(PrintDocument(one_page_pdf(), "application/pdf", name="slip"))
    seen: set[tuple[str, Severity]] = set()
    async with asyncio.timeout(60):
        while not (await queue.job_status(job_id)).state.terminal:
            seen |= {(c.code, c.severity) for c in (await queue.printer_status()).conditions}
            await asyncio.sleep(0.1)
    # ippeveprinter says toner-low-report, CUPS may pass it on as -report or -warning
    assert {("toner-low", Severity.INFO), ("toner-low", Severity.WARNING)} & seen
    assert not any(code.startswith("cups-") and severity != Severity.INFO for code, severity in seen)


async def test_cups_cancel_and_errors(queue: CupsPrinter, ippeve: IppEvePrinter) -> None:
    ippeve.script_job(delay=5)
    job_id = await queue.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    await queue.cancel(job_id)
    assert await finish(queue, job_id) == PrintJobState.CANCELLED
    await queue.cancel(job_id)  # finished: not an error
    with pytest.raises(InvalidRequestError):
        await queue.submit(PrintDocument(b"x", "application/x-unknown"))
    with pytest.raises(NotFoundError):
        await queue.job_status("999999")
