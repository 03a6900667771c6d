"""The IPP backend against a real ippeveprinter (TESTBED.md, Printers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.domain.device import DeviceState, Severity
from agent.domain.printer import PrintDocument, PrinterState, PrintJobState, PrintJobStatus
from agent.drivers.printer.ipp_backend import IppBackend, IppPrinter
from agent.errors import DeviceBusyError, InvalidRequestError
from tests.printer.context import PrinterTestContext
from tests.printer.documents import jpeg, one_page_pdf
from tests.printer.peers import IppEvePrinter


@pytest.fixture
async def printer(ippeve: IppEvePrinter, ctx: PrinterTestContext) -> AsyncIterator[IppPrinter]:
    backend = IppBackend(ctx, {"uris": [ippeve.uri], "browse": False, "poll_interval": 0.1})
    await backend.start()
    await ctx.wait_for(lambda: bool(ctx.found))
    device = ctx.found[0]
    assert isinstance(device, IppPrinter)
    await device.open()
    try:
        yield device
    finally:
        await backend.stop()


async def wait_job(printer: IppPrinter, job_id: str, timeout: float = 20.0) -> list[PrintJobStatus]:
    seen: list[PrintJobStatus] = []
    async with asyncio.timeout(timeout):
        while True:
            status = await printer.job_status(job_id)
            seen.append(status)
            if status.state.terminal:
                return seen
            await asyncio.sleep(printer.job_poll_interval)


async def test_configured_printer_describes_itself(printer: IppPrinter, ippeve: IppEvePrinter) -> None:
    descriptor = printer.descriptor
    assert descriptor.stable_key.startswith("urn:uuid:")
    assert descriptor.name == ippeve.name
    assert descriptor.address == ippeve.uri
    caps = printer.printer_capabilities()
    assert "application/pdf" in caps.document_formats
    assert "application/octet-stream" not in caps.document_formats
    assert caps.max_copies >= 99
    status = await printer.printer_status()
    assert status.state == PrinterState.IDLE
    assert printer.health().state == DeviceState.READY
    toner = [s for s in status.supplies if s.kind == "toner"]
    assert toner
    assert toner[0].level_percent == 75
    assert toner[0].color == "black"


async def test_pdf_prints_to_completion(printer: IppPrinter) -> None:
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf", name="slip"))
    states = await wait_job(printer, job_id)
    assert states[-1].state == PrintJobState.COMPLETED
    assert states[-1].printer_job_id == job_id
    assert {s.state for s in states} <= {PrintJobState.PENDING, PrintJobState.PROCESSING,
                                         PrintJobState.COMPLETED}
    assert printer.health().counters["jobs_submitted"] == 1


async def test_jpeg_prints_too(printer: IppPrinter) -> None:
    job_id = await printer.submit(PrintDocument(jpeg(), "image/jpeg"))
    assert (await wait_job(printer, job_id))[-1].state == PrintJobState.COMPLETED


async def test_unsupported_format_is_rejected(printer: IppPrinter) -> None:
    with pytest.raises(InvalidRequestError, match="does not take text/plain") as info:
        await printer.submit(PrintDocument(b"hello", "text/plain"))
    assert info.value.reason == "UNSUPPORTED_FORMAT"
    with pytest.raises(InvalidRequestError, match="copies"):
        await printer.submit(PrintDocument(one_page_pdf(), "application/pdf", copies=0))


async def test_cancel_a_running_job(printer: IppPrinter, ippeve: IppEvePrinter) -> None:
    ippeve.script_job(delay=5)
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    await printer.cancel(job_id)
    states = await wait_job(printer, job_id)
    assert states[-1].state == PrintJobState.CANCELLED
    await printer.cancel(job_id)  # a finished job: not an error


async def test_second_job_while_busy_gets_device_busy(printer: IppPrinter, ippeve: IppEvePrinter) -> None:
    ippeve.script_job(delay=2)
    first = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    with pytest.raises(DeviceBusyError) as info:
        await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    assert info.value.retryable
    assert (await wait_job(printer, first))[-1].state == PrintJobState.COMPLETED


async def test_failing_print_command_aborts_the_job(printer: IppPrinter, ippeve: IppEvePrinter) -> None:
    ippeve.script_job(exit_code=3)
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    assert (await wait_job(printer, job_id))[-1].state == PrintJobState.ABORTED


async def test_toner_low_then_empty_reach_health(printer: IppPrinter, ippeve: IppEvePrinter,
                                                 ctx: PrinterTestContext) -> None:
    ippeve.set_supplies(toner=5)
    await ctx.wait_for(lambda: any(c.code == "toner-low" for c in printer.health().conditions))
    low = next(c for c in printer.health().conditions if c.code == "toner-low")
    assert low.severity in (Severity.INFO, Severity.WARNING)
    assert next(s for s in printer.health().supplies if s.kind == "toner").level_percent == 5
    ippeve.set_supplies(toner=0)
    await ctx.wait_for(lambda: any(c.code == "toner-empty" for c in printer.health().conditions))
    ippeve.set_supplies(toner=80)
    await ctx.wait_for(lambda: not any(c.code.startswith("toner") for c in printer.health().conditions))


async def test_media_empty_holds_the_job_and_reports(printer: IppPrinter, ippeve: IppEvePrinter,
                                                     ctx: PrinterTestContext) -> None:
    ippeve.set_media_level(0)
    await ctx.wait_for(lambda: any(c.code == "media-empty" for c in printer.health().conditions))
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    async with asyncio.timeout(10):
        while True:
            status = await printer.job_status(job_id)
            if "media-empty" in status.reasons or "media-needed" in status.reasons:
                break
            assert not status.state.terminal
            await asyncio.sleep(0.1)
    ippeve.set_media_level(250)
    assert (await wait_job(printer, job_id))[-1].state == PrintJobState.COMPLETED


async def test_jam_and_cover_open_from_the_print_command(printer: IppPrinter, ippeve: IppEvePrinter,
                                                         ctx: PrinterTestContext) -> None:
    ippeve.script_job(state="STATE: +media-jam,cover-open")
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    await wait_job(printer, job_id)
    await ctx.wait_for(lambda: {"media-jam", "cover-open"} <= {c.code for c in printer.health().conditions})
    jam = next(c for c in printer.health().conditions if c.code == "media-jam")
    assert jam.message == "paper jam"  # ippeveprinter reports these as -report: severity info
    ippeve.script_job(state="STATE: -media-jam,cover-open")
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    await wait_job(printer, job_id)
    await ctx.wait_for(lambda: not {"media-jam", "cover-open"}
                       & {c.code for c in printer.health().conditions})


async def test_job_options_are_validated_first(printer: IppPrinter, ippeve: IppEvePrinter) -> None:
    document = PrintDocument(one_page_pdf(), "application/pdf", copies=2, media="na_letter_8.5x11in")
    job_id = await printer.submit(document)
    assert (await wait_job(printer, job_id))[-1].state == PrintJobState.COMPLETED
    log = (ippeve.workdir / "ippeveprinter.log").read_text()
    assert "Validate-Job successful-ok" in log
    with pytest.raises(InvalidRequestError, match="two-sided"):
        await printer.submit(PrintDocument(one_page_pdf(), "application/pdf", duplex=True))
    with pytest.raises(InvalidRequestError, match="media"):
        await printer.submit(PrintDocument(one_page_pdf(), "application/pdf", media="iso_a0_841x1189mm"))
