"""One conformance suite every printer backend passes, each against its own real peer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.domain.device import DeviceFamily, DeviceHealth
from agent.domain.printer import PrintDocument, PrinterState, PrintJobState
from agent.drivers.base import DeviceBackend, Printer
from agent.drivers.printer.escpos_backend import RECEIPT_FORMAT
from agent.drivers.registry import load_backend_class
from agent.errors import InvalidRequestError, NotFoundError
from tests.printer.context import PrinterTestContext
from tests.printer.documents import one_page_pdf
from tests.printer.peers import CupsDaemon, FakeEscposPrinter, IppEvePrinter


@dataclass
class Subject:
    backend: DeviceBackend
    printer: Printer
    document: PrintDocument


@pytest.fixture
def escpos_peer(tmp_path: Path) -> Iterator[FakeEscposPrinter]:
    peer = FakeEscposPrinter(tmp_path / "escpos")
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


PDF = PrintDocument(one_page_pdf(), "application/pdf", name="conformance")


@pytest.fixture(params=["ipp", "sim-printer", "cups", "escpos"])
async def subject(request: pytest.FixtureRequest, ctx: PrinterTestContext) -> AsyncIterator[Subject]:
    name: str = request.param
    document = PDF
    if name == "ipp":
        ippeve: IppEvePrinter = request.getfixturevalue("ippeve")
        options: dict[str, object] = {"uris": [ippeve.uri], "browse": False}
    elif name == "sim-printer":
        options = {}
    elif name == "cups":
        request.getfixturevalue("ippeve")
        cupsd: CupsDaemon = request.getfixturevalue("cupsd")
        options = {"server": cupsd.server}
    else:
        peer: FakeEscposPrinter = request.getfixturevalue("escpos_peer")
        options = {"printers": [{"device": peer.device}]}
        document = PrintDocument(json.dumps({"title": "Conformance", "lines": ["ok"]}).encode(),
                                 RECEIPT_FORMAT)
    backend = load_backend_class(name)(ctx, options)
    await backend.start()
    try:
        await ctx.wait_for(lambda: bool(ctx.found), timeout=20)
        printer = ctx.found[0]
        assert isinstance(printer, Printer)
        await printer.open()
        yield Subject(backend, printer, document)
    finally:
        await backend.stop()


async def test_identity_and_declared_capabilities(subject: Subject) -> None:
    printer = subject.printer
    assert printer.family is DeviceFamily.PRINTER
    assert printer.descriptor.backend == subject.backend.name
    assert printer.descriptor.stable_key
    assert subject.document.mime_type in printer.printer_capabilities().document_formats
    assert isinstance(printer.health(), DeviceHealth)
    assert (await printer.printer_status()).state in (PrinterState.IDLE, PrinterState.PROCESSING)


async def test_prints_to_completion_and_cancel_after_is_harmless(subject: Subject) -> None:
    printer = subject.printer
    job_id = await printer.submit(subject.document)
    async with asyncio.timeout(60):
        while not (status := await printer.job_status(job_id)).state.terminal:
            await asyncio.sleep(printer.job_poll_interval)
    assert status.state is PrintJobState.COMPLETED
    assert status.printer_job_id == job_id
    await printer.cancel(job_id)
    assert (await printer.job_status(job_id)).state is PrintJobState.COMPLETED


async def test_refuses_what_it_cannot_print(subject: Subject) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await subject.printer.submit(PrintDocument(b"\x00", "application/x-centre-unknown"))
    assert info.value.reason == "UNSUPPORTED_FORMAT"
    with pytest.raises(NotFoundError):
        await subject.printer.job_status("424242")


async def test_close_is_idempotent(subject: Subject) -> None:
    await subject.printer.close()
    await subject.printer.close()


async def test_health_before_open_is_present(ctx: PrinterTestContext, tmp_path: Path) -> None:
    from agent.domain.device import DeviceDescriptor, DeviceState
    from agent.drivers.options import EscposPrinterOptions
    from agent.drivers.printer.cups_backend import CupsPrinter
    from agent.drivers.printer.escpos_backend import EscposPrinter
    from agent.drivers.printer.ipp_backend import IppPrinter

    descriptor = DeviceDescriptor(DeviceFamily.PRINTER, "test", "k", "unopened")

    async def never(fn: object) -> None:
        raise AssertionError("no I/O before open")

    printers: list[Printer] = [IppPrinter(descriptor, ctx, "ipp://127.0.0.1:9/ipp/print"),
                               EscposPrinter(descriptor, ctx, EscposPrinterOptions(device=str(tmp_path / "none")), 30),
                               CupsPrinter(descriptor, ctx, "q", never)]
    for printer in printers:
        assert printer.health().state is DeviceState.PRESENT
        await printer.close()
