"""The ESC/POS backend against a fake receipt printer on a socat pty pair and on TCP."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.domain.device import DeviceState, Severity
from agent.domain.printer import PrintDocument, PrintJobState
from agent.drivers.printer.escpos_backend import RECEIPT_FORMAT, EscposBackend, EscposPrinter, render
from agent.errors import DataFormatError, DeviceStateError, DeviceUnavailableError, InvalidRequestError
from tests.printer.context import PrinterTestContext
from tests.printer.documents import jpeg
from tests.printer.peers import FakeEscposPrinter


@pytest.fixture(params=["serial", "tcp"])
def fake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeEscposPrinter]:
    peer = FakeEscposPrinter(tmp_path / "escpos", tcp=request.param == "tcp")
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
async def receipt_printer(fake: FakeEscposPrinter, ctx: PrinterTestContext) -> AsyncIterator[EscposPrinter]:
    config = {"address": f"127.0.0.1:{fake.port}"} if fake.tcp else {"device": fake.device, "baudrate": 19200}
    backend = EscposBackend(ctx, {"printers": [config], "poll_interval": 0.1})
    await backend.start()
    device = ctx.found[0]
    assert isinstance(device, EscposPrinter)
    await device.open()
    try:
        yield device
    finally:
        await backend.stop()


RECEIPT = {"title": "UBND Phường Bến Nghé", "lines": ["Mã hồ sơ: 000.00.01.H29-260101-0001",
                                                     ["Lệ phí", "0 đ"]],
           "qr": "https://dichvucong.gov.vn/tra-cuu", "footer": "Cảm ơn"}


async def test_receipt_text_and_image_print(receipt_printer: EscposPrinter, fake: FakeEscposPrinter) -> None:
    assert receipt_printer.health().state == DeviceState.READY
    job = await receipt_printer.submit(PrintDocument(json.dumps(RECEIPT).encode(), RECEIPT_FORMAT))
    status = await receipt_printer.job_status(job)
    assert status.state == PrintJobState.COMPLETED
    await receipt_printer.submit(PrintDocument("Số thứ tự: 15\n".encode(), "text/plain", copies=2))
    await receipt_printer.submit(PrintDocument(jpeg(), "image/jpeg"))
    await receipt_printer.printer_status()  # a round trip: the printer has read everything before
    assert fake.cuts() == 4
    await receipt_printer.cancel(job)  # finished: not an error


def test_render_strips_vietnamese_marks() -> None:
    data = render(PrintDocument(json.dumps(RECEIPT).encode(), RECEIPT_FORMAT))
    assert b"UBND Phuong Ben Nghe" in data
    assert b"Le phi" in data
    assert b"0 d" in data
    with pytest.raises(DataFormatError):
        render(PrintDocument(b"{not json", RECEIPT_FORMAT))
    with pytest.raises(DataFormatError):
        render(PrintDocument(b'{"lines": [1]}', RECEIPT_FORMAT))
    with pytest.raises(DataFormatError):
        render(PrintDocument(b"\x00\x01", "image/png"))


async def test_status_queries_reach_health(receipt_printer: EscposPrinter, fake: FakeEscposPrinter,
                                           ctx: PrinterTestContext) -> None:
    fake.set_state(paper="near")
    await ctx.wait_for(lambda: [(c.code, c.severity) for c in receipt_printer.health().conditions]
                       == [("media-low", Severity.WARNING)])
    assert receipt_printer.health().state == DeviceState.READY
    fake.set_state(paper="end")
    await ctx.wait_for(lambda: any(c.code == "media-empty" for c in receipt_printer.health().conditions))
    assert receipt_printer.health().state == DeviceState.ERROR
    with pytest.raises(DeviceStateError) as info:
        await receipt_printer.submit(PrintDocument(b"x", "text/plain"))
    assert info.value.reason == "MEDIA_EMPTY"
    fake.set_state(cover="open")
    await ctx.wait_for(lambda: [c.code for c in receipt_printer.health().conditions] == ["cover-open"])
    with pytest.raises(DeviceStateError) as info:
        await receipt_printer.submit(PrintDocument(b"x", "text/plain"))
    assert info.value.reason == "COVER_OPEN"
    fake.set_state(mute=True)
    await ctx.wait_for(lambda: receipt_printer.health().conditions[0].code == "offline")
    with pytest.raises(DeviceUnavailableError):
        await receipt_printer.printer_status()
    fake.set_state()
    await ctx.wait_for(lambda: receipt_printer.health().state == DeviceState.READY
                       and not receipt_printer.health().conditions)


async def test_unsupported_format(receipt_printer: EscposPrinter) -> None:
    with pytest.raises(InvalidRequestError):
        await receipt_printer.submit(PrintDocument(b"%PDF", "application/pdf"))


async def test_canary_not_logged(receipt_printer: EscposPrinter, caplog: pytest.LogCaptureFixture) -> None:
    canary = "CANARY-CITIZEN-ESCPOS-55501"
    caplog.set_level(logging.DEBUG)
    receipt = {"title": canary, "lines": [canary]}
    await receipt_printer.submit(PrintDocument(json.dumps(receipt).encode(), RECEIPT_FORMAT))
    with pytest.raises(DataFormatError) as info:
        await receipt_printer.submit(PrintDocument(json.dumps({"lines": [[canary]]}).encode(), RECEIPT_FORMAT))
    assert canary not in str(info.value)
    assert canary not in caplog.text
